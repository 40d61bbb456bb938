package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	testclock "k8s.io/utils/clock/testing"

	"github.com/skerry-io/skerry/edge/edged"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// fakeRuntime is an in-memory CRI runtime and image service; times come from the fake
// clock so back-off is deterministic.
type fakeRuntime struct {
	runtimeapi.RuntimeServiceClient
	runtimeapi.ImageServiceClient

	clock *testclock.FakeClock
	mu    sync.Mutex
	seq   int
	sbs   map[string]*fakeSandbox
	ctrs  map[string]*fakeContainer
	// images present: reference → id
	images  map[string]string
	pullErr map[string]error
	pulls   []*runtimeapi.PullImageRequest
	calls   []string
	stops   map[string]int64 // container → StopContainer timeout
}

type fakeSandbox struct {
	id      string
	cfg     *runtimeapi.PodSandboxConfig
	state   runtimeapi.PodSandboxState
	created int64
	ip      string
}

type fakeContainer struct {
	id, sandbox        string
	cfg                *runtimeapi.ContainerConfig
	state              runtimeapi.ContainerState
	created            int64
	started, finished  int64
	exitCode           int32
	reason             string
	imageRef           string
	sandboxConfigOnAdd *runtimeapi.PodSandboxConfig
}

func newFakeRuntime(clk *testclock.FakeClock) *fakeRuntime {
	return &fakeRuntime{
		clock: clk, sbs: map[string]*fakeSandbox{}, ctrs: map[string]*fakeContainer{},
		images: map[string]string{}, pullErr: map[string]error{}, stops: map[string]int64{},
	}
}

func notFound(what, id string) error {
	return status.Errorf(codes.NotFound, "%s %q not found", what, id)
}

func (f *fakeRuntime) now() int64 { return f.clock.Now().UnixNano() }

func (f *fakeRuntime) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest, ...grpc.CallOption) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "containerd", RuntimeVersion: "fake"}, nil
}

func (f *fakeRuntime) RunPodSandbox(_ context.Context, r *runtimeapi.RunPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.RunPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	id := fmt.Sprintf("sb%d", f.seq)
	f.sbs[id] = &fakeSandbox{id: id, cfg: r.Config, state: runtimeapi.PodSandboxState_SANDBOX_READY, created: f.now(), ip: fmt.Sprintf("10.88.0.%d", f.seq)}
	f.record("RunPodSandbox %s", r.Config.Metadata.Name)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func (f *fakeRuntime) StopPodSandbox(_ context.Context, r *runtimeapi.StopPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.StopPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb := f.sbs[r.PodSandboxId]
	if sb == nil {
		return nil, notFound("sandbox", r.PodSandboxId)
	}
	sb.state = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	for _, c := range f.ctrs {
		if c.sandbox == sb.id && c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
			f.exitLocked(c, 137)
		}
	}
	f.record("StopPodSandbox %s", sb.id)
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (f *fakeRuntime) RemovePodSandbox(_ context.Context, r *runtimeapi.RemovePodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.RemovePodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sbs[r.PodSandboxId] == nil {
		return nil, notFound("sandbox", r.PodSandboxId)
	}
	delete(f.sbs, r.PodSandboxId)
	for id, c := range f.ctrs {
		if c.sandbox == r.PodSandboxId {
			delete(f.ctrs, id)
		}
	}
	f.record("RemovePodSandbox %s", r.PodSandboxId)
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (f *fakeRuntime) PodSandboxStatus(_ context.Context, r *runtimeapi.PodSandboxStatusRequest, _ ...grpc.CallOption) (*runtimeapi.PodSandboxStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb := f.sbs[r.PodSandboxId]
	if sb == nil {
		return nil, notFound("sandbox", r.PodSandboxId)
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id: sb.id, Metadata: sb.cfg.Metadata, State: sb.state, CreatedAt: sb.created,
		Network: &runtimeapi.PodSandboxNetworkStatus{Ip: sb.ip}, Labels: sb.cfg.Labels,
	}}, nil
}

func matches(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeRuntime) ListPodSandbox(_ context.Context, r *runtimeapi.ListPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.ListPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &runtimeapi.ListPodSandboxResponse{}
	for _, sb := range f.sbs {
		if matches(r.GetFilter().GetLabelSelector(), sb.cfg.Labels) {
			out.Items = append(out.Items, &runtimeapi.PodSandbox{Id: sb.id, Metadata: sb.cfg.Metadata, State: sb.state, CreatedAt: sb.created, Labels: sb.cfg.Labels})
		}
	}
	return out, nil
}

func (f *fakeRuntime) CreateContainer(_ context.Context, r *runtimeapi.CreateContainerRequest, _ ...grpc.CallOption) (*runtimeapi.CreateContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb := f.sbs[r.PodSandboxId]
	if sb == nil || sb.state != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, fmt.Errorf("sandbox %s not ready", r.PodSandboxId)
	}
	f.seq++
	id := fmt.Sprintf("c%d-%s", f.seq, r.Config.Metadata.Name)
	f.ctrs[id] = &fakeContainer{id: id, sandbox: sb.id, cfg: r.Config, state: runtimeapi.ContainerState_CONTAINER_CREATED,
		created: f.now(), imageRef: r.Config.Image.Image, sandboxConfigOnAdd: r.SandboxConfig}
	f.record("CreateContainer %s/%d", r.Config.Metadata.Name, r.Config.Metadata.Attempt)
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

func (f *fakeRuntime) StartContainer(_ context.Context, r *runtimeapi.StartContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StartContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.ctrs[r.ContainerId]
	if c == nil {
		return nil, notFound("container", r.ContainerId)
	}
	c.state, c.started = runtimeapi.ContainerState_CONTAINER_RUNNING, f.now()
	f.record("StartContainer %s/%d", c.cfg.Metadata.Name, c.cfg.Metadata.Attempt)
	return &runtimeapi.StartContainerResponse{}, nil
}

func (f *fakeRuntime) exitLocked(c *fakeContainer, code int32) {
	c.state, c.finished, c.exitCode = runtimeapi.ContainerState_CONTAINER_EXITED, f.now(), code
}

// exit makes the newest container called name exit with code.
func (f *fakeRuntime) exit(t *testing.T, name string, code int32) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.newestLocked(name)
	if c == nil || c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("no running container %s", name)
	}
	f.exitLocked(c, code)
}

func (f *fakeRuntime) newestLocked(name string) *fakeContainer {
	var best *fakeContainer
	for _, c := range f.ctrs {
		if c.cfg.Metadata.Name == name && (best == nil || c.created > best.created || c.created == best.created && c.id > best.id) {
			best = c
		}
	}
	return best
}

func (f *fakeRuntime) newest(name string) *fakeContainer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.newestLocked(name)
}

func (f *fakeRuntime) StopContainer(_ context.Context, r *runtimeapi.StopContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StopContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.ctrs[r.ContainerId]
	if c == nil {
		return nil, notFound("container", r.ContainerId)
	}
	if c.state == runtimeapi.ContainerState_CONTAINER_RUNNING {
		f.exitLocked(c, 143)
	}
	f.stops[r.ContainerId] = r.Timeout
	f.record("StopContainer %s/%d", c.cfg.Metadata.Name, c.cfg.Metadata.Attempt)
	return &runtimeapi.StopContainerResponse{}, nil
}

func (f *fakeRuntime) RemoveContainer(_ context.Context, r *runtimeapi.RemoveContainerRequest, _ ...grpc.CallOption) (*runtimeapi.RemoveContainerResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.ctrs[r.ContainerId]
	if c == nil {
		return nil, notFound("container", r.ContainerId)
	}
	delete(f.ctrs, r.ContainerId)
	f.record("RemoveContainer %s/%d", c.cfg.Metadata.Name, c.cfg.Metadata.Attempt)
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (f *fakeRuntime) ListContainers(_ context.Context, r *runtimeapi.ListContainersRequest, _ ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &runtimeapi.ListContainersResponse{}
	for _, c := range f.ctrs {
		if matches(r.GetFilter().GetLabelSelector(), c.cfg.Labels) {
			out.Containers = append(out.Containers, &runtimeapi.Container{
				Id: c.id, PodSandboxId: c.sandbox, Metadata: c.cfg.Metadata, Image: c.cfg.Image, ImageRef: c.imageRef,
				State: c.state, CreatedAt: c.created, Labels: c.cfg.Labels, Annotations: c.cfg.Annotations,
			})
		}
	}
	return out, nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, r *runtimeapi.ContainerStatusRequest, _ ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.ctrs[r.ContainerId]
	if c == nil {
		return nil, notFound("container", r.ContainerId)
	}
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{
		Id: c.id, Metadata: c.cfg.Metadata, State: c.state, CreatedAt: c.created, StartedAt: c.started,
		FinishedAt: c.finished, ExitCode: c.exitCode, Reason: c.reason, Image: c.cfg.Image, ImageRef: c.imageRef,
		Labels: c.cfg.Labels, Annotations: c.cfg.Annotations, LogPath: c.cfg.LogPath,
	}}, nil
}

func (f *fakeRuntime) ImageStatus(_ context.Context, r *runtimeapi.ImageStatusRequest, _ ...grpc.CallOption) (*runtimeapi.ImageStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.images[r.Image.Image]; ok {
		return &runtimeapi.ImageStatusResponse{Image: &runtimeapi.Image{Id: id, Uid: &runtimeapi.Int64Value{Value: 0}}}, nil
	}
	return &runtimeapi.ImageStatusResponse{}, nil
}

func (f *fakeRuntime) PullImage(_ context.Context, r *runtimeapi.PullImageRequest, _ ...grpc.CallOption) (*runtimeapi.PullImageResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulls = append(f.pulls, r)
	f.record("PullImage %s", r.Image.Image)
	if err := f.pullErr[r.Image.Image]; err != nil {
		return nil, err
	}
	id := "sha256:" + strings.NewReplacer("/", "-", ":", "-").Replace(r.Image.Image)
	f.images[r.Image.Image] = id
	return &runtimeapi.PullImageResponse{ImageRef: id}, nil
}

func (f *fakeRuntime) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeRuntime) count(prefix string) int {
	n := 0
	for _, c := range f.callLog() {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// fakeVolumes records setups and teardowns.
type fakeVolumes struct {
	mu        sync.Mutex
	setupErr  error
	setups    int
	teardowns []types.UID
}

func (v *fakeVolumes) Setup(context.Context, *corev1.Pod, edged.Facts) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.setups++
	return v.setupErr
}

func (v *fakeVolumes) Mounts(_ *corev1.Pod, c *corev1.Container) ([]*runtimeapi.Mount, error) {
	var ms []*runtimeapi.Mount
	for _, m := range c.VolumeMounts {
		ms = append(ms, &runtimeapi.Mount{ContainerPath: m.MountPath, HostPath: "/vol/" + m.Name, Readonly: m.ReadOnly})
	}
	return ms, nil
}

func (v *fakeVolumes) Teardown(_ context.Context, uid types.UID) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.teardowns = append(v.teardowns, uid)
	return nil
}

type fakeEnv struct{}

func (fakeEnv) Resolve(_ context.Context, _ *corev1.Pod, c *corev1.Container, f edged.Facts) ([]*runtimeapi.KeyValue, error) {
	var kv []*runtimeapi.KeyValue
	for _, e := range c.Env {
		kv = append(kv, &runtimeapi.KeyValue{Key: e.Name, Value: []byte(e.Value)})
	}
	kv = append(kv, &runtimeapi.KeyValue{Key: "POD_IP", Value: []byte(f.PodIP)})
	return kv, nil
}

// fakeProber: containers are ready once added, unless a test sets their state.
type fakeProber struct {
	mu      sync.Mutex
	added   map[string]int
	removed map[string]bool
	states  map[string]edged.ProbeState
	changes chan types.UID
}

func newFakeProber() *fakeProber {
	return &fakeProber{added: map[string]int{}, removed: map[string]bool{}, states: map[string]edged.ProbeState{}, changes: make(chan types.UID, 16)}
}

func (p *fakeProber) Add(_ *corev1.Pod, _ *corev1.Container, id string, _ edged.Facts) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.added[id]++
	if _, ok := p.states[id]; !ok {
		p.states[id] = edged.ProbeState{Started: true, Ready: true}
	}
}

func (p *fakeProber) Remove(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removed[id] = true
	delete(p.states, id)
}

func (p *fakeProber) State(id string) (edged.ProbeState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.states[id]
	return s, ok
}

func (p *fakeProber) set(id string, s edged.ProbeState) {
	p.mu.Lock()
	p.states[id] = s
	p.mu.Unlock()
}

func (p *fakeProber) wasAdded(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.added[id] > 0
}

func (p *fakeProber) Changes() <-chan types.UID { return p.changes }

type hookCall struct {
	container, containerID string
	preStop                bool
}

type fakeHooks struct {
	mu       sync.Mutex
	calls    []hookCall
	startErr error
}

func (h *fakeHooks) Run(_ context.Context, _ *corev1.Pod, c *corev1.Container, id string, hd *corev1.LifecycleHandler, _ edged.Facts) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	pre := c.Lifecycle != nil && c.Lifecycle.PreStop == hd
	h.calls = append(h.calls, hookCall{c.Name, id, pre})
	if !pre {
		return h.startErr
	}
	return nil
}

type fakeEvent struct{ typ, reason, msg string }

type fakeStatus struct {
	mu      sync.Mutex
	status  map[types.UID]corev1.PodStatus
	events  []fakeEvent
	deleted []types.UID
}

func newFakeStatus() *fakeStatus { return &fakeStatus{status: map[types.UID]corev1.PodStatus{}} }

func (s *fakeStatus) PodStatus(_ context.Context, pod *corev1.Pod, st corev1.PodStatus) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[pod.UID] = *st.DeepCopy()
	return nil
}

func (s *fakeStatus) PodDeleted(_ context.Context, pod *corev1.Pod) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted = append(s.deleted, pod.UID)
	return nil
}

func (s *fakeStatus) Event(_ context.Context, _ *corev1.Pod, typ, reason, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fakeEvent{typ, reason, msg})
}

func (s *fakeStatus) get(uid types.UID) (corev1.PodStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.status[uid]
	return st, ok
}

func (s *fakeStatus) hasEvent(reason, substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e.reason == reason && strings.Contains(e.msg, substr) {
			return true
		}
	}
	return false
}

func (s *fakeStatus) wasDeleted(uid types.UID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.deleted {
		if u == uid {
			return true
		}
	}
	return false
}

type fakeObjects struct{ secrets map[string]*corev1.Secret }

func (o *fakeObjects) ConfigMap(context.Context, string, string) (*corev1.ConfigMap, bool, error) {
	return nil, false, nil
}

func (o *fakeObjects) Secret(_ context.Context, ns, name string) (*corev1.Secret, bool, error) {
	s, ok := o.secrets[ns+"/"+name]
	return s, ok, nil
}

func (o *fakeObjects) PodTokens(context.Context, string, string) (*edged.PodTokens, bool, error) {
	return nil, false, nil
}

// harness runs a Runner on fakes and a real store.
type harness struct {
	t       *testing.T
	clock   *testclock.FakeClock
	db      *store.DB
	rt      *fakeRuntime
	volumes *fakeVolumes
	prober  *fakeProber
	hooks   *fakeHooks
	status  *fakeStatus
	objects *fakeObjects
	podsDir string
	cgroups string

	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	clk := testclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	db, err := store.Open(context.Background(), t.TempDir(), store.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	h := &harness{
		t: t, clock: clk, db: db, rt: newFakeRuntime(clk), volumes: &fakeVolumes{}, prober: newFakeProber(),
		hooks: &fakeHooks{}, status: newFakeStatus(), objects: &fakeObjects{secrets: map[string]*corev1.Secret{}},
		podsDir: t.TempDir(), cgroups: t.TempDir(),
	}
	return h
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (h *harness) start() {
	h.t.Helper()
	resolv := filepath.Join(h.t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 192.0.2.53\nsearch example.org\noptions ndots:2\n"), 0o644); err != nil {
		h.t.Fatal(err)
	}
	r, err := New(Config{
		Runtime: h.rt, Images: h.rt, Store: h.db, Volumes: h.volumes, Env: fakeEnv{}, Prober: h.prober,
		Hooks: h.hooks, Status: h.status, Objects: h.objects, NodeName: "edge-1", HostIP: "192.0.2.10",
		PodsDir: h.podsDir, CgroupFS: h.cgroups, ResolvConf: resolv, Logger: quietLogger(), Clock: h.clock,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- r.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Error("Run did not return")
	}
}

func (h *harness) apply(op wire.Operation, pod *corev1.Pod) {
	h.t.Helper()
	b, err := json.Marshal(pod)
	if err != nil {
		h.t.Fatal(err)
	}
	m := wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: op, Resource: pod.Namespace + "/pod/" + pod.Name}, b)
	if err := h.db.ApplyMessage(context.Background(), m); err != nil {
		h.t.Fatalf("apply %s: %v", op, err)
	}
}

// sync makes the runner sync pod now (as a probe change would).
func (h *harness) sync(pod *corev1.Pod) { h.prober.changes <- pod.UID }

// waitFor polls cond (real time, short interval) until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) waitStatus(pod *corev1.Pod, what string, cond func(corev1.PodStatus) bool) corev1.PodStatus {
	h.t.Helper()
	var st corev1.PodStatus
	waitFor(h.t, what, func() bool {
		var ok bool
		st, ok = h.status.get(pod.UID)
		return ok && cond(st)
	})
	return st
}

func containerStatus(st corev1.PodStatus, name string) corev1.ContainerStatus {
	for _, cs := range append(append([]corev1.ContainerStatus{}, st.InitContainerStatuses...), st.ContainerStatuses...) {
		if cs.Name == name {
			return cs
		}
	}
	return corev1.ContainerStatus{}
}

func newPod(name string, containers ...string) *corev1.Pod {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), ResourceVersion: "1", Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{NodeName: "edge-1", RestartPolicy: corev1.RestartPolicyAlways},
	}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: c, Image: "127.0.0.1:5000/library/busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent})
	}
	return pod
}
