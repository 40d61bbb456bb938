package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
	"github.com/skerry-io/skerry/edge/edged/cgroupfs"
)

// minGracePeriod is the least time a container gets after its preStop hook (the kubelet's).
const minGracePeriod = 2

// annotationGracePeriod carries the pod's grace period on its containers, so an orphan (a
// pod gone from the store while edged was down) is stopped with it.
const annotationGracePeriod = "io.kubernetes.pod.terminationGracePeriod"

// teardown stops and removes everything of the pod: preStop hooks, containers (in parallel,
// each with the grace period), sandboxes, volumes, the pod cgroup and the log directory.
// pod may be nil (an orphan); grace nil means the pod's own period.
func (w *worker) teardown(ctx context.Context, pod *corev1.Pod, grace *int64) error {
	v, err := w.observe(ctx)
	if err != nil {
		return err
	}
	var errs []error
	if err := w.killContainers(ctx, pod, v, grace, nil); err != nil {
		errs = append(errs, err)
	}
	rt := w.r.cfg.Runtime
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	for _, sb := range v.sandboxes {
		if _, err := rt.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); ignoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("StopPodSandbox %s: %w", sb.Id, err))
		}
	}
	for _, c := range v.all {
		w.r.cfg.Prober.Remove(c.id)
		if _, err := rt.RemoveContainer(cctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.id}); ignoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("RemoveContainer %s: %w", c.id, err))
		}
	}
	for _, sb := range v.sandboxes {
		if _, err := rt.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); ignoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("RemovePodSandbox %s: %w", sb.Id, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := w.r.cfg.Volumes.Teardown(ctx, w.uid); err != nil {
		return fmt.Errorf("volumes: %w", err)
	}
	if err := cgroupfs.RemovePod(w.r.cfg.CgroupFS, w.r.cfg.CgroupRoot, string(w.uid)); err != nil {
		return err
	}
	podDir := filepath.Join(w.r.cfg.PodsDir, string(w.uid))
	for _, d := range []string{"logs", "containers"} {
		if err := os.RemoveAll(filepath.Join(podDir, d)); err != nil {
			return fmt.Errorf("remove %s: %w", d, err)
		}
	}
	_ = os.Remove(podDir) // only if Volumes left it empty
	w.log.Info("pod torn down", "sandboxes", len(v.sandboxes), "containers", len(v.all))
	return nil
}

// killContainers stops the running containers of v (those for which only returns true, or
// all): each runs its preStop hook, then gets what is left of the grace period.
func (w *worker) killContainers(ctx context.Context, pod *corev1.Pod, v *view, grace *int64, only func(*ctr) bool) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range v.all {
		if !c.running() || only != nil && !only(c) {
			continue
		}
		g := containerGrace(pod, c, grace)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.killContainer(ctx, pod, c, g, "Stopping container "+c.name); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func containerGrace(pod *corev1.Pod, c *ctr, grace *int64) int64 {
	switch {
	case grace != nil:
		return *grace
	case pod != nil:
		return gracePeriod(pod)
	}
	if g, err := strconv.ParseInt(c.status.GetAnnotations()[annotationGracePeriod], 10, 64); err == nil {
		return g
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

// killContainer runs the container's preStop hook within the grace period, then stops it
// with what is left (at least minGracePeriod).
func (w *worker) killContainer(ctx context.Context, pod *corev1.Pod, c *ctr, grace int64, why string) error {
	start := w.r.clock.Now()
	if spec := findContainer(pod, c.name); spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil {
		hctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
		err := w.r.cfg.Hooks.Run(hctx, pod, spec, c.id, spec.Lifecycle.PreStop, w.facts(pod, nil))
		cancel()
		if err != nil {
			w.event(ctx, pod, corev1.EventTypeWarning, "FailedPreStopHook", fmt.Sprintf("PreStopHook failed: %v", err))
		}
	}
	left := grace - int64(w.r.clock.Since(start)/time.Second)
	left = max(left, minGracePeriod)
	w.event(ctx, pod, corev1.EventTypeNormal, "Killing", why)
	sctx, cancel := context.WithTimeout(ctx, time.Duration(left)*time.Second+callTimeout)
	defer cancel()
	if _, err := w.r.cfg.Runtime.StopContainer(sctx, &runtimeapi.StopContainerRequest{ContainerId: c.id, Timeout: left}); ignoreNotFound(err) != nil {
		return fmt.Errorf("StopContainer %s (%s): %w", c.id, c.name, err)
	}
	w.r.cfg.Prober.Remove(c.id)
	return nil
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	if pod == nil {
		return nil
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// facts is what the pod's environment may read.
func (w *worker) facts(pod *corev1.Pod, v *view) edged.Facts {
	f := edged.Facts{NodeName: w.r.cfg.NodeName, HostIP: w.r.cfg.HostIP}
	switch {
	case pod != nil && pod.Spec.HostNetwork:
		f.PodIP, f.PodIPs = w.r.cfg.HostIP, []string{w.r.cfg.HostIP}
	case v != nil && v.ip != "":
		f.PodIP, f.PodIPs = v.ip, v.ips
	}
	return f
}
