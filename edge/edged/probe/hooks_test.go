package probe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/skerry-io/skerry/edge/edged"
)

func runHook(r *HookRunner, ctx context.Context, c *corev1.Container, h *corev1.LifecycleHandler) error {
	return r.Run(ctx, testPod("u1", *c), c, "id1", h, facts)
}

func TestHookExec(t *testing.T) {
	var gotCmd []string
	var gotTimeout time.Duration = -1
	code := int32(0)
	r := NewHookRunner(Config{Exec: execFunc(func(_ context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int32, error) {
		gotCmd, gotTimeout = cmd, timeout
		if id != "id1" {
			return nil, nil, 0, errors.New("wrong container")
		}
		return []byte("hello"), []byte("oops"), code, nil
	})})
	c := &corev1.Container{Name: "c", Env: []corev1.EnvVar{{Name: "A", Value: "1"}}}
	h := &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo $(A)"}}}
	if err := runHook(r, context.Background(), c, h); err != nil {
		t.Fatal(err)
	}
	// Hooks are not expanded and have no timeout of their own, as in the kubelet.
	if gotCmd[2] != "echo $(A)" || gotTimeout != 0 {
		t.Fatalf("cmd %q timeout %v", gotCmd, gotTimeout)
	}
	code = 3
	err := runHook(r, context.Background(), c, h)
	if err == nil || !strings.Contains(err.Error(), "exited with 3: oops") || !strings.Contains(err.Error(), `message: "hellooops"`) {
		t.Fatalf("err %v", err)
	}
}

func TestHookExecError(t *testing.T) {
	cause := errors.New("no such container")
	r := NewHookRunner(Config{Exec: execFunc(func(context.Context, string, []string, time.Duration) ([]byte, []byte, int32, error) {
		return nil, nil, 0, cause
	})})
	c := &corev1.Container{Name: "c"}
	err := runHook(r, context.Background(), c, &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"x"}}})
	if !errors.Is(err, cause) {
		t.Fatalf("err %v", err)
	}
}

func TestHookHTTP(t *testing.T) {
	reqs := make(chan *http.Request, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqs <- r
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	_, port := hostPort(t, srv.URL)
	c := &corev1.Container{Name: "c", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(port)}}}
	r := NewHookRunner(Config{})
	get := func(path string, mod func(*corev1.HTTPGetAction)) *corev1.LifecycleHandler {
		a := &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("web")}
		if mod != nil {
			mod(a)
		}
		return &corev1.LifecycleHandler{HTTPGet: a}
	}
	if err := runHook(r, context.Background(), c, get("/start", func(a *corev1.HTTPGetAction) {
		a.HTTPHeaders = []corev1.HTTPHeader{{Name: "X-Hook", Value: "1"}}
	})); err != nil {
		t.Fatal(err)
	}
	req := <-reqs
	if req.URL.Path != "/start" || req.UserAgent() != lifecycleUserAgent || req.Header.Get("X-Hook") != "1" {
		t.Fatalf("request %s %v", req.URL, req.Header)
	}
	// The kubelet does not look at the status code of a hook's response.
	if err := runHook(r, context.Background(), c, get("/fail", nil)); err != nil {
		t.Fatalf("500 failed the hook: %v", err)
	}
	<-reqs
	// An https hook answered in plain HTTP is retried over http.
	if err := runHook(r, context.Background(), c, get("/tls", func(a *corev1.HTTPGetAction) {
		a.Scheme = corev1.URISchemeHTTPS
		a.HTTPHeaders = []corev1.HTTPHeader{{Name: "Authorization", Value: "secret"}}
	})); err != nil {
		t.Fatalf("https fallback: %v", err)
	}
	if req := <-reqs; req.URL.Path != "/tls" || req.Header.Get("Authorization") != "" {
		t.Fatalf("fallback request %s %v", req.URL, req.Header)
	}
	// No response: failure, naming the path.
	err := runHook(r, context.Background(), c, get("/gone", func(a *corev1.HTTPGetAction) { a.Port = intstr.FromInt32(int32(closedPort(t))) }))
	if err == nil || !strings.Contains(err.Error(), "/gone") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err %v", err)
	}
	// Unknown named port.
	if err := runHook(r, context.Background(), c, get("/", func(a *corev1.HTTPGetAction) { a.Port = intstr.FromString("nope") })); err == nil {
		t.Fatal("unknown port accepted")
	}
}

func TestHookHTTPEndsWithCtx(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	_, port := hostPort(t, srv.URL)
	c := &corev1.Container{Name: "c"}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := runHook(NewHookRunner(Config{}), ctx, c, &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(int32(port))}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

func TestHookSleep(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(1_000_000, 0))
	r := NewHookRunner(Config{Clock: clk})
	c := &corev1.Container{Name: "c"}
	h := &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}
	done := make(chan error, 1)
	go func() { done <- runHook(r, context.Background(), c, h) }()
	waitWaiters(t, clk)
	clk.Step(4 * time.Second)
	select {
	case err := <-done:
		t.Fatalf("returned early: %v", err)
	default:
	}
	clk.Step(time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitFor):
		t.Fatal("sleep did not end")
	}

	// ctx ends the sleep with an error.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- runHook(r, ctx, c, h) }()
	waitWaiters(t, clk)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "terminated before sleep hook finished") {
			t.Fatalf("err %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("sleep ignored ctx")
	}
	if err := runHook(r, context.Background(), c, &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{}}); err != nil {
		t.Fatalf("sleep 0: %v", err)
	}
}

func waitWaiters(t *testing.T, clk *testingclock.FakeClock) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("no timer")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHookUnsupported(t *testing.T) {
	r := NewHookRunner(Config{})
	c := &corev1.Container{Name: "c"}
	for _, h := range []*corev1.LifecycleHandler{
		{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}},
		{},
	} {
		if err := runHook(r, context.Background(), c, h); !errors.Is(err, edged.ErrUnsupported) {
			t.Fatalf("err %v", err)
		}
	}
}
