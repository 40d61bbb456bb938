package edgejoin

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

// fakeCRI holds sandboxes and containers and applies label selectors as containerd does.
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	mu         sync.Mutex
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
	stopped    []string
}

func matches(labels, sel map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeCRI) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "fake", RuntimeVersion: "v1"}, nil
}

func (f *fakeCRI) ListPodSandbox(_ context.Context, r *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, s := range f.sandboxes {
		if matches(s.Labels, r.GetFilter().GetLabelSelector()) {
			out = append(out, s)
		}
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

func (f *fakeCRI) StopPodSandbox(_ context.Context, r *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = append(f.stopped, r.PodSandboxId)
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (f *fakeCRI) RemovePodSandbox(_ context.Context, r *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sandboxes = slices.DeleteFunc(f.sandboxes, func(s *runtimeapi.PodSandbox) bool { return s.Id == r.PodSandboxId })
	f.containers = slices.DeleteFunc(f.containers, func(c *runtimeapi.Container) bool { return c.PodSandboxId == r.PodSandboxId })
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (f *fakeCRI) ListContainers(_ context.Context, r *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		if matches(c.Labels, r.GetFilter().GetLabelSelector()) {
			out = append(out, c)
		}
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func (f *fakeCRI) RemoveContainer(_ context.Context, r *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers = slices.DeleteFunc(f.containers, func(c *runtimeapi.Container) bool { return c.Id == r.ContainerId })
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func serveFakeCRI(t *testing.T, f *fakeCRI) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, f)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return "unix://" + sock
}

func TestCRIRemoveNodePods(t *testing.T) {
	pod := func(id, node, uid string) *runtimeapi.PodSandbox {
		return &runtimeapi.PodSandbox{Id: id, Labels: map[string]string{edged.LabelNode: node, edged.LabelPodUID: uid, edged.LabelPodName: id}}
	}
	f := &fakeCRI{
		sandboxes: []*runtimeapi.PodSandbox{pod("a", "edge-1", "uid-a"), pod("b", "edge-2", "uid-b"), {Id: "k8s", Labels: map[string]string{"io.kubernetes.pod.uid": "x"}}},
		containers: []*runtimeapi.Container{
			{Id: "ca", PodSandboxId: "a", Labels: map[string]string{edged.LabelNode: "edge-1"}},
			{Id: "orphan", PodSandboxId: "gone", Labels: map[string]string{edged.LabelNode: "edge-1"}},
			{Id: "cb", PodSandboxId: "b", Labels: map[string]string{edged.LabelNode: "edge-2"}},
		},
	}
	rt, err := newCRIRuntime(serveFakeCRI(t, f))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if name, _, err := rt.Version(context.Background()); err != nil || name != "fake" {
		t.Fatalf("version %q %v", name, err)
	}
	uids, err := rt.RemoveNodePods(context.Background(), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(uids, []string{"uid-a"}) || !slices.Equal(f.stopped, []string{"a"}) {
		t.Fatalf("uids %q stopped %q", uids, f.stopped)
	}
	var left []string
	for _, s := range f.sandboxes {
		left = append(left, s.Id)
	}
	for _, c := range f.containers {
		left = append(left, c.Id)
	}
	if !slices.Equal(left, []string{"b", "k8s", "cb"}) {
		t.Fatalf("left %q, want the other node's and the kubelet's", left)
	}
}
