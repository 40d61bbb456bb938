package probe

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/skerry-io/skerry/edge/edged"
)

const waitFor = 10 * time.Second

// codeExec answers each command with the exit code set for its first word.
type codeExec struct {
	mu    sync.Mutex
	codes map[string]int32
	calls map[string]int
}

func newCodeExec() *codeExec { return &codeExec{codes: map[string]int32{}, calls: map[string]int{}} }

func (e *codeExec) set(cmd string, code int32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.codes[cmd] = code
}

func (e *codeExec) count(cmd string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[cmd]
}

func (e *codeExec) ExecSync(ctx context.Context, _ string, cmd []string, _ time.Duration) ([]byte, []byte, int32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls[cmd[0]]++
	return []byte(cmd[0] + " out"), nil, e.codes[cmd[0]], ctx.Err()
}

type iter struct {
	id     string
	k      kind
	probed bool
}

type harness struct {
	events  eventLog
	t       *testing.T
	m       *Manager
	clk     *testingclock.FakeClock
	iters   chan iter
	backlog []iter
	stop    func()
}

func newHarness(t *testing.T, exec Execer) *harness {
	t.Helper()
	clk := testingclock.NewFakeClock(time.Unix(1_000_000, 0))
	h := &harness{t: t, clk: clk, iters: make(chan iter, 1<<14)}
	h.m = New(Config{Exec: exec, Clock: clk, Event: h.events.record})
	h.m.afterIteration = func(id string, k kind, probed bool) { h.iters <- iter{id, k, probed} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

// next waits for the next iteration of one worker and says whether it probed.
func (h *harness) next(id string, k kind) bool {
	h.t.Helper()
	for i, it := range h.backlog {
		if it.id == id && it.k == k {
			h.backlog = append(h.backlog[:i], h.backlog[i+1:]...)
			return it.probed
		}
	}
	deadline := time.After(waitFor)
	for {
		select {
		case it := <-h.iters:
			if it.id == id && it.k == k {
				return it.probed
			}
			h.backlog = append(h.backlog, it)
		case <-deadline:
			h.t.Fatalf("no iteration of %s probe of %s", k, id)
		}
	}
}

// noIteration checks that no worker iterated (without waiting: iterations are reported
// synchronously after the step that causes them, which next() already waited for).
func (h *harness) noIteration() {
	h.t.Helper()
	select {
	case it := <-h.iters:
		h.t.Fatalf("unexpected iteration %+v", it)
	default:
	}
	if len(h.backlog) > 0 {
		h.t.Fatalf("unexpected iterations %+v", h.backlog)
	}
}

func (h *harness) state(id string) edged.ProbeState {
	h.t.Helper()
	s, ok := h.m.State(id)
	if !ok {
		h.t.Fatalf("no state for %s", id)
	}
	return s
}

func (h *harness) wantChange(uid types.UID) {
	h.t.Helper()
	select {
	case got := <-h.m.Changes():
		if got != uid {
			h.t.Fatalf("change for %s, want %s", got, uid)
		}
	case <-time.After(waitFor):
		h.t.Fatalf("no change for %s", uid)
	}
}

func (h *harness) noChange() {
	h.t.Helper()
	// Changes are queued synchronously with the state change; give the pump a moment.
	select {
	case got := <-h.m.Changes():
		h.t.Fatalf("unexpected change for %s", got)
	case <-time.After(50 * time.Millisecond):
	}
}

func execProbe(cmd string, mod func(*corev1.Probe)) *corev1.Probe {
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{cmd}}}}
	if mod != nil {
		mod(p)
	}
	return p
}

func testPod(uid string, c corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p-" + uid, Namespace: "ns", UID: types.UID(uid)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
	}
}

var facts = edged.Facts{PodIP: "127.0.0.1"}

func TestNoProbes(t *testing.T) {
	h := newHarness(t, newCodeExec())
	c := corev1.Container{Name: "c"}
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	if s := h.state("id1"); !s.Started || !s.Ready || s.Unhealthy {
		t.Fatalf("state %+v", s)
	}
	if _, ok := h.m.State("nope"); ok {
		t.Fatal("unknown container has a state")
	}
	h.m.Remove("id1")
	if _, ok := h.m.State("id1"); ok {
		t.Fatal("removed container has a state")
	}
}

func TestLivenessThreshold(t *testing.T) {
	e := newCodeExec()
	h := newHarness(t, e)
	c := corev1.Container{Name: "c", LivenessProbe: execProbe("live", nil)} // defaults: period 10, failure 3
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	if !h.next("id1", liveness) {
		t.Fatal("no probe at once")
	}
	e.set("live", 1)
	for i := range 2 {
		h.clk.Step(10 * time.Second)
		h.next("id1", liveness)
		if s := h.state("id1"); s.Unhealthy {
			t.Fatalf("unhealthy after %d failures", i+1)
		}
	}
	// A success resets the count.
	e.set("live", 0)
	h.clk.Step(10 * time.Second)
	h.next("id1", liveness)
	e.set("live", 1)
	for range 2 {
		h.clk.Step(10 * time.Second)
		h.next("id1", liveness)
	}
	h.noChange()
	if s := h.state("id1"); s.Unhealthy {
		t.Fatal("unhealthy after a success and 2 failures")
	}
	h.clk.Step(10 * time.Second)
	h.next("id1", liveness)
	s := h.state("id1")
	if !s.Unhealthy || s.Message != "Liveness probe failed: live out" || !s.Ready {
		t.Fatalf("state %+v", s)
	}
	// Every failure, not only the one that crossed the threshold, is an Unhealthy event.
	if got := h.events.count("Warning Unhealthy u1: Liveness probe failed: live out"); got != 5 {
		t.Errorf("%d Unhealthy events, want 5: %q", got, h.events.all())
	}
	h.wantChange("u1")
	// Probing stops for the dying container.
	calls := e.count("live")
	h.clk.Step(10 * time.Second)
	h.noChange()
	if e.count("live") != calls {
		t.Fatal("probed after liveness failed")
	}
}

func TestInitialDelayAndPeriod(t *testing.T) {
	e := newCodeExec()
	h := newHarness(t, e)
	c := corev1.Container{Name: "c", LivenessProbe: execProbe("live", func(p *corev1.Probe) {
		p.InitialDelaySeconds = 15
		p.PeriodSeconds = 5
		p.FailureThreshold = 1
	})}
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	want := []bool{false, false, false, true, true} // t=0,5,10: delay; 15, 20: probe
	for i, w := range want {
		if i > 0 {
			h.clk.Step(5 * time.Second)
		}
		if got := h.next("id1", liveness); got != w {
			t.Fatalf("t=%ds: probed=%v, want %v", i*5, got, w)
		}
	}
	if n := e.count("live"); n != 2 {
		t.Fatalf("%d probes, want 2", n)
	}
	// failureThreshold 1: one failure is enough.
	e.set("live", 3)
	h.clk.Step(5 * time.Second)
	h.next("id1", liveness)
	if s := h.state("id1"); !s.Unhealthy {
		t.Fatalf("state %+v", s)
	}
}

func TestInitialDelayFromStatus(t *testing.T) {
	e := newCodeExec()
	h := newHarness(t, e)
	c := corev1.Container{Name: "c", LivenessProbe: execProbe("live", func(p *corev1.Probe) { p.InitialDelaySeconds = 30 })}
	pod := testPod("u1", c)
	// An adopted container that started a minute ago is probed at once.
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: "c", ContainerID: "containerd://id1",
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(h.clk.Now().Add(-time.Minute))}},
	}}
	h.m.Add(pod, &c, "id1", facts)
	if !h.next("id1", liveness) {
		t.Fatal("adopted container not probed at once")
	}
}

func TestReadinessThresholds(t *testing.T) {
	e := newCodeExec()
	h := newHarness(t, e)
	c := corev1.Container{Name: "c", ReadinessProbe: execProbe("ready", func(p *corev1.Probe) {
		p.SuccessThreshold = 2
		p.FailureThreshold = 2
		p.PeriodSeconds = 1
	})}
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	h.next("id1", readiness)
	if s := h.state("id1"); s.Ready || !s.Started {
		t.Fatalf("ready after 1 success: %+v", s)
	}
	h.noChange()
	h.clk.Step(time.Second)
	h.next("id1", readiness)
	if s := h.state("id1"); !s.Ready {
		t.Fatalf("not ready after 2 successes: %+v", s)
	}
	h.wantChange("u1")
	e.set("ready", 1)
	h.clk.Step(time.Second)
	h.next("id1", readiness)
	if s := h.state("id1"); !s.Ready {
		t.Fatal("not ready after 1 failure")
	}
	h.clk.Step(time.Second)
	h.next("id1", readiness)
	if s := h.state("id1"); s.Ready || s.Unhealthy {
		t.Fatalf("state after 2 failures: %+v", s)
	}
	h.wantChange("u1")
	// Readiness keeps probing after failing.
	e.set("ready", 0)
	for range 2 {
		h.clk.Step(time.Second)
		h.next("id1", readiness)
	}
	if s := h.state("id1"); !s.Ready {
		t.Fatal("not ready again")
	}
}

func TestStartupGating(t *testing.T) {
	e := newCodeExec()
	h := newHarness(t, e)
	e.set("start", 1)
	c := corev1.Container{Name: "c",
		StartupProbe:   execProbe("start", func(p *corev1.Probe) { p.PeriodSeconds = 3; p.FailureThreshold = 5 }),
		LivenessProbe:  execProbe("live", func(p *corev1.Probe) { p.PeriodSeconds = 10 }),
		ReadinessProbe: execProbe("ready", func(p *corev1.Probe) { p.PeriodSeconds = 10 }),
	}
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	h.next("id1", startup)
	if h.next("id1", liveness) || h.next("id1", readiness) {
		t.Fatal("liveness or readiness probed before startup succeeded")
	}
	if s := h.state("id1"); s.Started || s.Ready || s.Unhealthy {
		t.Fatalf("state %+v", s)
	}
	e.set("start", 0)
	h.clk.Step(3 * time.Second)
	h.next("id1", startup)
	// Readiness is probed at once once started, not at its next tick.
	if !h.next("id1", readiness) {
		t.Fatal("readiness not probed after startup succeeded")
	}
	if s := h.state("id1"); !s.Started || !s.Ready {
		t.Fatalf("state %+v", s)
	}
	h.wantChange("u1")
	h.noIteration()
	if e.count("live") != 0 {
		t.Fatal("liveness probed before its tick")
	}
	h.clk.Step(7 * time.Second) // t=10: liveness and readiness tick; startup is done
	if !h.next("id1", liveness) || !h.next("id1", readiness) {
		t.Fatal("liveness or readiness not probed after startup")
	}
	if n := e.count("start"); n != 2 {
		t.Fatalf("startup probed %d times, want 2", n)
	}
}

func TestStartupFailure(t *testing.T) {
	e := newCodeExec()
	h := newHarness(t, e)
	e.set("start", 1)
	c := corev1.Container{Name: "c",
		StartupProbe:  execProbe("start", func(p *corev1.Probe) { p.PeriodSeconds = 1; p.FailureThreshold = 2 }),
		LivenessProbe: execProbe("live", nil),
	}
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	h.next("id1", startup)
	h.clk.Step(time.Second)
	h.next("id1", startup)
	s := h.state("id1")
	if !s.Unhealthy || s.Started || s.Ready || s.Message != "Startup probe failed: start out" {
		t.Fatalf("state %+v", s)
	}
	h.wantChange("u1")
	if e.count("live") != 0 {
		t.Fatal("liveness ran")
	}
}

func TestStartupWithoutReadiness(t *testing.T) {
	e := newCodeExec()
	h := newHarness(t, e)
	e.set("start", 1)
	c := corev1.Container{Name: "c", StartupProbe: execProbe("start", nil)}
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	h.next("id1", startup)
	if s := h.state("id1"); s.Ready || s.Started {
		t.Fatalf("state %+v", s)
	}
	e.set("start", 0)
	h.clk.Step(10 * time.Second)
	h.next("id1", startup)
	if s := h.state("id1"); !s.Ready || !s.Started {
		t.Fatalf("state %+v", s)
	}
	h.wantChange("u1")
}

func TestAddTwice(t *testing.T) {
	e := newCodeExec()
	h := newHarness(t, e)
	c := corev1.Container{Name: "c", LivenessProbe: execProbe("live", nil)}
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	h.next("id1", liveness)
	h.noIteration()
	if n := e.count("live"); n != 1 {
		t.Fatalf("%d probes", n)
	}
}

// TestProbeErrorIgnored: an attempt that cannot run (an unknown named port) leaves the
// state alone, as in the kubelet.
func TestProbeErrorIgnored(t *testing.T) {
	h := newHarness(t, newCodeExec())
	c := corev1.Container{Name: "c", LivenessProbe: &corev1.Probe{FailureThreshold: 1, ProbeHandler: corev1.ProbeHandler{
		TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("nope")}}}}
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	for range 3 {
		h.next("id1", liveness)
		h.clk.Step(10 * time.Second)
	}
	if s := h.state("id1"); s.Unhealthy {
		t.Fatalf("state %+v", s)
	}
}

func TestHTTPReadinessWiring(t *testing.T) {
	var mu sync.Mutex
	code := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(code)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	h := newHarness(t, newCodeExec())
	c := corev1.Container{Name: "c", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(port)}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("web")}}}}
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	h.next("id1", readiness)
	if s := h.state("id1"); s.Ready {
		t.Fatal("ready on 503")
	}
	mu.Lock()
	code = http.StatusOK
	mu.Unlock()
	h.clk.Step(10 * time.Second)
	h.next("id1", readiness)
	if s := h.state("id1"); !s.Ready {
		t.Fatal("not ready on 200")
	}
	h.wantChange("u1")
}

// TestChangesCoalesce: a reader that does not read never blocks the prober, and what
// piles up for one pod is bounded.
func TestChangesCoalesce(t *testing.T) {
	h := newHarness(t, newCodeExec())
	for range 10_000 {
		h.m.mu.Lock()
		h.m.notify("a")
		h.m.notify("b")
		h.m.mu.Unlock()
	}
	got := map[types.UID]int{}
	drain := time.After(200 * time.Millisecond)
	for done := false; !done; {
		select {
		case uid := <-h.m.Changes():
			got[uid]++
		case <-drain:
			done = true
		}
	}
	if got["a"] == 0 || got["b"] == 0 || got["a"]+got["b"] > changesBuffer+4 {
		t.Fatalf("got %v", got)
	}
}

func TestRemoveStopsWorkers(t *testing.T) {
	e := newCodeExec()
	h := newHarness(t, e)
	base := runtime.NumGoroutine()
	var ids []string
	for i := range 20 {
		c := corev1.Container{Name: "c",
			LivenessProbe:  execProbe("live", nil),
			ReadinessProbe: execProbe("ready", nil),
			StartupProbe:   execProbe("start", nil),
		}
		id := fmt.Sprintf("id%d", i)
		ids = append(ids, id)
		h.m.Add(testPod(fmt.Sprint("u", i), c), &c, id, facts)
	}
	if n := runtime.NumGoroutine(); n < base+40 {
		t.Fatalf("%d goroutines, base %d", n, base)
	}
	for _, id := range ids {
		h.m.Remove(id)
	}
	waitGoroutines(t, base)
	// Run's end stops the rest.
	for i := range 5 {
		c := corev1.Container{Name: "c", LivenessProbe: execProbe("live", nil)}
		h.m.Add(testPod(fmt.Sprint("v", i), c), &c, fmt.Sprint("v", i), facts)
	}
	h.stop()
	waitGoroutines(t, base-1) // Run itself has returned too
	// Adds after Run ended start nothing.
	c := corev1.Container{Name: "c", LivenessProbe: execProbe("live", nil)}
	h.m.Add(testPod("w", c), &c, "w", facts)
	waitGoroutines(t, base-1)
}

func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want ≤ %d\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRemoveCancelsProbe: a probe in flight ends with Remove and sets nothing.
func TestRemoveCancelsProbe(t *testing.T) {
	started := make(chan struct{})
	e := execFunc(func(ctx context.Context, _ string, _ []string, _ time.Duration) ([]byte, []byte, int32, error) {
		close(started)
		<-ctx.Done()
		return nil, nil, 0, ctx.Err()
	})
	h := newHarness(t, e)
	base := runtime.NumGoroutine()
	c := corev1.Container{Name: "c", LivenessProbe: execProbe("live", func(p *corev1.Probe) { p.TimeoutSeconds = 3600 })}
	h.m.Add(testPod("u1", c), &c, "id1", facts)
	<-started
	h.m.Remove("id1")
	waitGoroutines(t, base)
	h.noChange()
}

type execFunc func(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error)

func (f execFunc) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error) {
	return f(ctx, id, cmd, timeout)
}

// eventLog records the events the manager emits.
type eventLog struct {
	mu   sync.Mutex
	list []string
}

func (l *eventLog) record(_ context.Context, pod *corev1.Pod, eventType, reason, message string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, fmt.Sprintf("%s %s %s: %s", eventType, reason, pod.UID, message))
}

func (l *eventLog) count(s string) int {
	n := 0
	for _, e := range l.all() {
		if e == s {
			n++
		}
	}
	return n
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.list...)
}
