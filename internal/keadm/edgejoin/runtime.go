package edgejoin

import (
	"context"
	"errors"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/certs"
	"github.com/skerry-io/skerry/edge/cri"
	"github.com/skerry-io/skerry/edge/edged"
)

// Runtime is what join and reset need from the container runtime.
type Runtime interface {
	// Version names the runtime ("containerd", "v1.6.20").
	Version(ctx context.Context) (name, version string, err error)
	// RemoveNodePods stops and removes every pod sandbox, and any container left, that
	// Edged made for node, and returns the pods' uids.
	RemoveNodePods(ctx context.Context, node string) (uids []string, err error)
	Close() error
}

// criCallTimeout bounds each stop or remove call; StopPodSandbox waits for the containers.
const criCallTimeout = 2 * time.Minute

type criRuntime struct{ c *cri.Client }

func newCRIRuntime(endpoint string) (Runtime, error) {
	c, err := cri.New(endpoint)
	if err != nil {
		return nil, err
	}
	return criRuntime{c}, nil
}

func (r criRuntime) Version(ctx context.Context) (string, string, error) { return r.c.Version(ctx) }
func (r criRuntime) Close() error                                        { return r.c.Close() }

func (r criRuntime) RemoveNodePods(ctx context.Context, node string) ([]string, error) {
	rt := r.c.Runtime()
	mine := map[string]string{edged.LabelNode: node}
	call := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, criCallTimeout) }
	cctx, cancel := call()
	sbs, err := rt.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: mine}})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("list pod sandboxes: %w", err)
	}
	var (
		uids []string
		errs []error
	)
	for _, sb := range sbs.Items {
		if uid := sb.Labels[edged.LabelPodUID]; uid != "" {
			uids = append(uids, uid)
		}
		cctx, cancel := call()
		if _, err := rt.StopPodSandbox(cctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop pod sandbox %s (%s): %w", sb.Id, podName(sb.Labels), err))
		} else if _, err := rt.RemovePodSandbox(cctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove pod sandbox %s (%s): %w", sb.Id, podName(sb.Labels), err))
		}
		cancel()
	}
	// Containers whose sandbox went away before them.
	cctx, cancel = call()
	cs, err := rt.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: mine}})
	cancel()
	if err != nil {
		return uids, errors.Join(append(errs, fmt.Errorf("list containers: %w", err))...)
	}
	for _, c := range cs.Containers {
		cctx, cancel := call()
		if _, err := rt.RemoveContainer(cctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.Id, err))
		}
		cancel()
	}
	return uids, errors.Join(errs...)
}

func podName(l map[string]string) string {
	return l[edged.LabelPodNamespace] + "/" + l[edged.LabelPodName]
}

func certsBootstrap(ctx context.Context, addr, token, nodeName, dataDir string) error {
	_, err := certs.Bootstrap(ctx, addr, token, nodeName, dataDir)
	return err
}
