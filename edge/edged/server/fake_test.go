package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

// fakeRuntime implements the CRI calls the server makes; any other call panics through the
// nil embedded interface.
type fakeRuntime struct {
	runtimeapi.RuntimeServiceClient

	mu         sync.Mutex
	containers []*runtimeapi.Container
	statuses   map[string]*runtimeapi.ContainerStatus
	sandboxes  []*runtimeapi.PodSandbox
	cstats     []*runtimeapi.ContainerStats
	pstats     []*runtimeapi.PodSandboxStats
	pstatsErr  error
	streamURL  string
	lastExec   *runtimeapi.ExecRequest
	lastAttach *runtimeapi.AttachRequest
	lastPF     *runtimeapi.PortForwardRequest
	panicList  bool
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{statuses: map[string]*runtimeapi.ContainerStatus{}}
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeRuntime) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest, _ ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panicList {
		panic("boom")
	}
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		if !matches(req.GetFilter().GetLabelSelector(), c.Labels) {
			continue
		}
		if st := req.GetFilter().GetState(); st != nil && st.State != c.State {
			continue
		}
		out = append(out, c)
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest, _ ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.statuses[req.ContainerId]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such container")
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: st.Id, State: st.State, LogPath: st.LogPath}}, nil
}

func (f *fakeRuntime) setState(id string, s runtimeapi.ContainerState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses[id].State = s
	for _, c := range f.containers {
		if c.Id == id {
			c.State = s
		}
	}
}

func (f *fakeRuntime) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.ListPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.PodSandbox
	for _, sb := range f.sandboxes {
		if !matches(req.GetFilter().GetLabelSelector(), sb.Labels) {
			continue
		}
		if st := req.GetFilter().GetState(); st != nil && st.State != sb.State {
			continue
		}
		out = append(out, sb)
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

func (f *fakeRuntime) ListContainerStats(context.Context, *runtimeapi.ListContainerStatsRequest, ...grpc.CallOption) (*runtimeapi.ListContainerStatsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &runtimeapi.ListContainerStatsResponse{Stats: f.cstats}, nil
}

func (f *fakeRuntime) ListPodSandboxStats(context.Context, *runtimeapi.ListPodSandboxStatsRequest, ...grpc.CallOption) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pstatsErr != nil {
		return nil, f.pstatsErr
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: f.pstats}, nil
}

func (f *fakeRuntime) Exec(_ context.Context, req *runtimeapi.ExecRequest, _ ...grpc.CallOption) (*runtimeapi.ExecResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastExec = req
	return &runtimeapi.ExecResponse{Url: f.streamURL + "/exec/token1"}, nil
}

func (f *fakeRuntime) Attach(_ context.Context, req *runtimeapi.AttachRequest, _ ...grpc.CallOption) (*runtimeapi.AttachResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastAttach = req
	return &runtimeapi.AttachResponse{Url: f.streamURL + "/attach/token2"}, nil
}

func (f *fakeRuntime) PortForward(_ context.Context, req *runtimeapi.PortForwardRequest, _ ...grpc.CallOption) (*runtimeapi.PortForwardResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastPF = req
	return &runtimeapi.PortForwardResponse{Url: f.streamURL + "/portforward/token3"}, nil
}

// addContainer registers a container of pod ns/pod with a log file holding content.
func (f *fakeRuntime) addContainer(t *testing.T, ns, pod, uid, name, id string, attempt uint32, state runtimeapi.ContainerState, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), id+".log")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{
		edged.LabelPodNamespace: ns, edged.LabelPodName: pod, edged.LabelPodUID: uid, edged.LabelContainerName: name,
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers = append(f.containers, &runtimeapi.Container{
		Id: id, PodSandboxId: "sb-" + pod, Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt},
		State: state, CreatedAt: int64(attempt+1) * 1e9, Labels: labels,
	})
	f.statuses[id] = &runtimeapi.ContainerStatus{Id: id, State: state, LogPath: path}
	return path
}

func testPod(ns, name, uid string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
	}
	return p
}

// newTestServer returns a server over f serving pods, and an HTTP test server for it.
func newTestServer(t *testing.T, f *fakeRuntime, mod func(*Config), pods ...*corev1.Pod) (*Server, *httptest.Server) {
	t.Helper()
	cfg := Config{
		Runtime:         f,
		Pods:            func() []*corev1.Pod { return pods },
		NodeName:        "edge-1",
		LogPollInterval: 10 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		s.stop()
		s.active.Wait()
	})
	return s, ts
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
