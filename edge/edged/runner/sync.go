package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

// Waiting reasons of containers (the kubelet's).
const (
	reasonCrashLoopBackOff   = "CrashLoopBackOff"
	reasonContainerCreating  = "ContainerCreating"
	reasonPodInitializing    = "PodInitializing"
	reasonCreateConfigError  = "CreateContainerConfigError"
	reasonCreateError        = "CreateContainerError"
	reasonRunContainerError  = "RunContainerError"
	reasonPostStartHookError = "PostStartHookError"
)

// resetBackoffAfter: a container that ran this long restarts without back-off.
const resetBackoffAfter = 10 * time.Minute

// syncPod is the kubelet's SyncPod, simplified: volumes, sandbox, init containers one at a
// time, then the containers, each restarted per the restart policy with back-off; then
// status. It returns when to sync again.
func (w *worker) syncPod(ctx context.Context, pod *corev1.Pod) (time.Duration, error) {
	w.waiting = map[string]*corev1.ContainerStateWaiting{}
	var wake time.Time
	wakeAt := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	if w.terminal == "" && (pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed) {
		// Kubernetes already recorded the pod as finished (before an edgecore restart, say):
		// a finished pod never runs again, as with the kubelet.
		w.terminal = pod.Status.Phase
		w.failReason, w.failMessage = pod.Status.Reason, pod.Status.Message
	}
	if w.terminal == "" {
		if err := validate(pod); err != nil {
			w.fail(ctx, pod, "UnsupportedPodSpec", err)
		}
	}
	v, err := w.observe(ctx)
	if err != nil {
		return 0, err
	}
	if w.startTime == nil {
		t := metav1.NewTime(w.r.clock.Now().Truncate(time.Second))
		if n := len(v.sandboxes); n > 0 { // adopted: the pod started with its first sandbox
			t = metav1.NewTime(time.Unix(0, v.sandboxes[n-1].CreatedAt).Truncate(time.Second))
		}
		w.startTime = &t
	}
	if w.terminal != "" {
		// Nothing runs again; stop what is left so the sandbox's resources go.
		if err := w.killContainers(ctx, pod, v, nil, nil); err != nil {
			return 0, err
		}
		if v.ready() {
			if _, err := w.r.cfg.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: v.current.Id}); ignoreNotFound(err) != nil {
				return 0, fmt.Errorf("StopPodSandbox: %w", err)
			}
		}
		return 0, w.report(ctx, pod, v)
	}

	facts := w.facts(pod, v)
	if err := w.r.cfg.Volumes.Setup(ctx, pod, facts); err != nil {
		if errors.Is(err, edged.ErrUnsupported) {
			w.fail(ctx, pod, "UnsupportedPodSpec", err)
			return w.syncPod(ctx, pod)
		}
		w.event(ctx, pod, corev1.EventTypeWarning, "FailedMount", fmt.Sprintf("MountVolume.SetUp failed: %v", err))
		return retryAfter, w.report(ctx, pod, v)
	}

	if !v.ready() {
		// A pod whose containers all finished for good gets no new sandbox.
		if ph := w.phase(pod, v, nil); ph == corev1.PodSucceeded || ph == corev1.PodFailed {
			w.terminal = ph
			return w.syncPod(ctx, pod)
		}
		if !w.needsSandbox(pod, v) {
			return 0, w.report(ctx, pod, v)
		}
		if err := w.createSandbox(ctx, pod, v); err != nil {
			w.event(ctx, pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", fmt.Sprintf("Failed to create pod sandbox: %v", err))
			_ = w.report(ctx, pod, v)
			return retryAfter, err
		}
		if v, err = w.observe(ctx); err != nil {
			return 0, err
		}
		facts = w.facts(pod, v)
	}
	sbCfg, err := w.r.sandboxConfig(pod, v.current.GetMetadata().GetAttempt())
	if err != nil {
		return 0, err
	}
	sb := v.current.Id

	// Init containers, one at a time, in order.
	initialized := true
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cur := v.newest(c.Name, sb)
		if cur != nil && cur.exited() && cur.exitCode() == 0 {
			continue
		}
		initialized = false
		if cur != nil && cur.running() {
			break
		}
		if cur != nil && cur.exited() {
			if pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				break // the pod fails: phase says so
			}
			if in, until := w.crashBackoff(ctx, pod, c, cur); in {
				wakeAt(until)
				break
			}
		}
		wakeAt(w.startContainer(ctx, pod, c, sb, sbCfg, v, facts, false))
		break
	}

	if initialized {
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			cur := v.newest(c.Name, sb)
			switch {
			case cur != nil && cur.running() && cur.specChanged(containerHash(c)):
				why := fmt.Sprintf("Container %s definition changed, will be restarted", c.Name)
				if err := w.killContainer(ctx, pod, cur, gracePeriod(pod), why); err != nil {
					return 0, err
				}
				// Restarted whatever the restart policy says, as the kubelet does: the
				// container did not fail, its spec changed.
			case cur != nil && cur.running():
				if ps, ok := w.r.cfg.Prober.State(cur.id); ok && ps.Unhealthy {
					why := fmt.Sprintf("Container %s failed liveness probe, will be restarted", c.Name)
					if ps.Message != "" {
						why = fmt.Sprintf("Container %s failed liveness probe: %s", c.Name, ps.Message)
					}
					if err := w.killContainer(ctx, pod, cur, gracePeriod(pod), why); err != nil {
						return 0, err
					}
					w.poke() // decide on the restart with the exit recorded
					continue
				}
				w.r.cfg.Prober.Add(pod, c, cur.id, facts)
				continue
			case cur != nil && cur.exited():
				if !shouldRestart(pod.Spec.RestartPolicy, cur.exitCode()) {
					continue
				}
				if in, until := w.crashBackoff(ctx, pod, c, cur); in {
					wakeAt(until)
					continue
				}
			case cur == nil && pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure:
				// In a new sandbox, OnFailure does not rerun a container that succeeded.
				if prev := v.newest(c.Name, ""); prev != nil && prev.exited() && prev.exitCode() == 0 {
					continue
				}
			case cur != nil:
				// Created but never started (edged stopped in between): start afresh.
				if _, err := w.r.cfg.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: cur.id}); ignoreNotFound(err) != nil {
					return 0, fmt.Errorf("RemoveContainer: %w", err)
				}
			}
			wakeAt(w.startContainer(ctx, pod, c, sb, sbCfg, v, facts, true))
		}
	}

	if v, err = w.observe(ctx); err != nil {
		return 0, err
	}
	w.gc(ctx, v)
	if ph := w.phase(pod, v, nil); ph == corev1.PodSucceeded || ph == corev1.PodFailed {
		w.terminal = ph
		w.log.Info("pod finished", "phase", ph)
		return w.syncPod(ctx, pod)
	}
	if err := w.report(ctx, pod, v); err != nil {
		return 0, err
	}
	if wake.IsZero() {
		return 0, nil
	}
	return max(wake.Sub(w.r.clock.Now()), time.Millisecond), nil
}

// fail makes the pod Failed for good, naming the reason.
func (w *worker) fail(ctx context.Context, pod *corev1.Pod, reason string, err error) {
	w.terminal = corev1.PodFailed
	w.failReason = reason
	w.failMessage = "Pod was rejected: " + err.Error()
	w.event(ctx, pod, corev1.EventTypeWarning, reason, w.failMessage)
}

func shouldRestart(policy corev1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// needsSandbox reports whether a pod whose sandbox is gone or not ready gets a new one: not
// when restartPolicy Never and containers already ran (the kubelet's rule), nor when every
// container finished for good.
func (w *worker) needsSandbox(pod *corev1.Pod, v *view) bool {
	if v.current == nil {
		return true
	}
	if pod.Spec.RestartPolicy == corev1.RestartPolicyNever && len(v.all) > 0 {
		return false
	}
	return true
}

// crashBackoff applies the kubelet's restart back-off to the container that exited: true
// (and when it ends) while the container must wait.
func (w *worker) crashBackoff(ctx context.Context, pod *corev1.Pod, c *corev1.Container, cur *ctr) (bool, time.Time) {
	hash := containerHash(c)
	if cur.specChanged(hash) {
		return false, time.Time{} // a new spec is not a crash loop
	}
	key := backoffKey(c, hash)
	finished := cur.finishedAt()
	ranLong := finished.Sub(cur.startedAt()) >= resetBackoffAfter
	if !w.crashSeeded[key] {
		// The first look at this container since the worker started (after an edgecore
		// restart, say): the delay it had is not in memory, but the runtime keeps what it
		// follows from, the attempt that exited and when. Attempt n ≥ 1 exiting means n
		// back-off steps were taken.
		w.crashSeeded[key] = true
		if !ranLong {
			w.crashBO.seed(key, finished, cur.attempt)
		}
	}
	if ranLong {
		w.crashBO.reset(key) // it ran long enough: not a crash loop
	}
	if in, until, e := w.crashBO.inBackoffSince(key, finished); in {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{
			Reason:  reasonCrashLoopBackOff,
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", e.delay, c.Name, podDesc(pod)),
		}
		w.event(ctx, pod, corev1.EventTypeWarning, "BackOff", fmt.Sprintf("Back-off restarting failed container %s in pod %s", c.Name, podDesc(pod)))
		return true, until
	}
	w.crashBO.next(key, finished, "")
	return false, time.Time{}
}

// podDesc is the kubelet's format.Pod: name_namespace(uid).
func podDesc(pod *corev1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// createSandbox stops the pod's old sandboxes and their containers (a new sandbox restarts
// every container, as the kubelet does) and runs a new one.
func (w *worker) createSandbox(ctx context.Context, pod *corev1.Pod, v *view) error {
	var attempt uint32
	if v.current != nil {
		attempt = v.current.GetMetadata().GetAttempt() + 1
		w.event(ctx, pod, corev1.EventTypeNormal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
		if err := w.killContainers(ctx, pod, v, nil, nil); err != nil {
			return err
		}
		for _, sb := range v.sandboxes {
			if _, err := w.r.cfg.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); ignoreNotFound(err) != nil {
				return fmt.Errorf("StopPodSandbox %s: %w", sb.Id, err)
			}
		}
	}
	cfg, err := w.r.sandboxConfig(pod, attempt)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	if err := w.r.ensurePodCgroup(pod); err != nil {
		return fmt.Errorf("pod cgroup limits: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := w.r.cfg.Runtime.RunPodSandbox(cctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return fmt.Errorf("RunPodSandbox: %w", err)
	}
	w.log.Info("sandbox started", "sandbox", resp.PodSandboxId, "attempt", attempt)
	return nil
}

// startContainer pulls, creates and starts one container attempt and runs its postStart
// hook. On failure the container waits with the kubelet's reason; the time returned is
// when to try again (zero: on the next trigger).
func (w *worker) startContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, sb string, sbCfg *runtimeapi.PodSandboxConfig, v *view, facts edged.Facts, probe bool) time.Time {
	log := w.log.With("container", c.Name)
	ref, wait, retry := w.ensureImage(ctx, pod, c)
	if wait != nil {
		w.waiting[c.Name] = wait
		return retry
	}
	failed := func(reason string, err error) time.Time {
		w.waiting[c.Name] = &corev1.ContainerStateWaiting{Reason: reason, Message: err.Error()}
		w.event(ctx, pod, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return w.r.clock.Now().Add(retryAfter)
	}
	envs, err := w.r.cfg.Env.Resolve(ctx, pod, c, facts)
	if err != nil {
		return failed(reasonCreateConfigError, err)
	}
	mounts, err := w.r.cfg.Volumes.Mounts(pod, c)
	if err != nil {
		return failed(reasonCreateConfigError, err)
	}
	hosts, err := w.hostsMount(pod, c, facts)
	if err != nil {
		return failed(reasonCreateConfigError, err)
	}
	if hosts != nil {
		mounts = append(mounts, hosts)
	}
	attempt := v.nextAttempt(c.Name)
	term, err := w.terminationMount(c, attempt, mounts)
	if err != nil {
		return failed(reasonCreateConfigError, err)
	}
	if term != nil {
		mounts = append(mounts, term)
	}
	cfg, err := w.containerConfig(ctx, pod, c, attempt, ref, envs, mounts)
	if err != nil {
		return failed(reasonCreateConfigError, err)
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rt := w.r.cfg.Runtime
	created, err := rt.CreateContainer(cctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb, Config: cfg, SandboxConfig: sbCfg})
	if err != nil {
		return failed(reasonCreateError, fmt.Errorf("CreateContainer: %w", err))
	}
	id := created.ContainerId
	w.event(ctx, pod, corev1.EventTypeNormal, "Created", "Created container: "+c.Name)
	if _, err := rt.StartContainer(cctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		return failed(reasonRunContainerError, fmt.Errorf("StartContainer: %w", err))
	}
	w.event(ctx, pod, corev1.EventTypeNormal, "Started", "Started container "+c.Name)
	log.Info("container started", "containerID", id, "attempt", attempt)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if err := w.r.cfg.Hooks.Run(ctx, pod, c, id, c.Lifecycle.PostStart, facts); err != nil {
			w.event(ctx, pod, corev1.EventTypeWarning, "FailedPostStartHook", fmt.Sprintf("PostStartHook failed: %v", err))
			x := &ctr{id: id, name: c.Name, state: runtimeapi.ContainerState_CONTAINER_RUNNING}
			if err := w.killContainer(ctx, pod, x, gracePeriod(pod), "FailedPostStartHook"); err != nil {
				log.Error("killing the container after its postStart hook failed", "err", err)
			}
			w.poke() // restart per policy, with back-off
			return time.Time{}
		}
	}
	if probe {
		w.r.cfg.Prober.Add(pod, c, id, facts)
	}
	return time.Time{}
}

// gc removes exited containers older than the two newest of each name (the newest and the
// one before, kept for `previous` logs and lastState), and old sandboxes left without
// containers.
func (w *worker) gc(ctx context.Context, v *view) {
	used := map[string]bool{}
	if v.current != nil {
		used[v.current.Id] = true
	}
	for name, cs := range v.byName {
		for i, c := range cs {
			if i < 2 || c.running() {
				used[c.sandboxID] = true
				continue
			}
			if _, err := w.r.cfg.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.id}); ignoreNotFound(err) != nil {
				w.log.Warn("garbage collection: RemoveContainer failed", "container", name, "containerID", c.id, "err", err)
				used[c.sandboxID] = true
				continue
			}
			w.r.cfg.Prober.Remove(c.id)
			w.forgetTermination(c)
		}
	}
	for _, sb := range v.sandboxes {
		if used[sb.Id] {
			continue
		}
		if _, err := w.r.cfg.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); ignoreNotFound(err) != nil {
			continue
		}
		if _, err := w.r.cfg.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); ignoreNotFound(err) != nil {
			w.log.Warn("garbage collection: RemovePodSandbox failed", "sandbox", sb.Id, "err", err)
		}
	}
}
