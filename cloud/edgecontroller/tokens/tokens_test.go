package tokens

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	testingclock "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

type call struct {
	namespace, serviceAccount string
	req                       *authenticationv1.TokenRequest
}

// fakeAPI answers TokenRequests like the API server, with tokens "tok-<n>".
type fakeAPI struct {
	clock *testingclock.FakeClock

	mu    sync.Mutex
	calls []call
	// lifetime, when set, is what the server grants instead of the requested lifetime.
	lifetime time.Duration
	err      error
	// failAudience, when set, makes requests for that audience fail.
	failAudience string
	// gate, when set, holds every request until it is closed.
	gate chan struct{}
}

func (f *fakeAPI) react(a k8stesting.Action) (bool, k8sruntime.Object, error) {
	ca, ok := a.(k8stesting.CreateActionImpl)
	if !ok || ca.GetSubresource() != "token" {
		return false, nil, nil
	}
	req := ca.GetObject().(*authenticationv1.TokenRequest)
	f.mu.Lock()
	f.calls = append(f.calls, call{ca.GetNamespace(), ca.Name, req.DeepCopy()})
	n, life, err, gate := len(f.calls), f.lifetime, f.err, f.gate
	if f.failAudience != "" && len(req.Spec.Audiences) == 1 && req.Spec.Audiences[0] == f.failAudience {
		err = apierrors.NewInternalError(fmt.Errorf("audience %s unavailable", f.failAudience))
	}
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if err != nil {
		return true, nil, err
	}
	if life == 0 {
		life = time.Duration(*req.Spec.ExpirationSeconds) * time.Second
	}
	out := req.DeepCopy()
	out.Status = authenticationv1.TokenRequestStatus{
		Token:               fmt.Sprintf("tok-%d", n),
		ExpirationTimestamp: metav1.NewTime(f.clock.Now().Add(life)),
	}
	return true, out, nil
}

func (f *fakeAPI) numCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeAPI) call(i int) call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[i]
}

func (f *fakeAPI) set(fn func(f *fakeAPI)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

type env struct {
	t     *testing.T
	clock *testingclock.FakeClock
	api   *fakeAPI
	m     *Manager

	mu        sync.Mutex
	refreshes map[string]int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clock: testingclock.NewFakeClock(t0), refreshes: map[string]int{}}
	e.api = &fakeAPI{clock: e.clock}
	cs := fake.NewClientset()
	cs.PrependReactor("create", "serviceaccounts", e.api.react)
	e.m = New(Config{Client: cs, Clock: e.clock, OnRefresh: func(ns, pod string) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.refreshes[ns+"/"+pod]++
	}})
	return e
}

// run starts Run until the test ends, and checks that it returns.
func (e *env) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.m.Run(ctx)
	}()
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			e.t.Error("Run did not return after cancel")
		}
	})
}

func (e *env) refreshCount(key string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refreshes[key]
}

// waitTimer waits until Run sleeps on a timer that fires at at.
func (e *env) waitTimer(at time.Time) {
	e.t.Helper()
	eventually(e.t, "Run's timer set to "+at.Format(time.RFC3339), func() bool {
		e.m.mu.Lock()
		defer e.m.mu.Unlock()
		return e.m.wakeAt.Equal(at) && e.clock.HasWaiters()
	})
}

func (e *env) tokens(pod *corev1.Pod) (PodTokens, string) {
	e.t.Helper()
	raw, rv, err := e.m.Tokens(context.Background(), pod)
	if err != nil {
		e.t.Fatalf("Tokens: %v", err)
	}
	var doc PodTokens
	if err := json.Unmarshal(raw, &doc); err != nil {
		e.t.Fatalf("decode %s: %v", raw, err)
	}
	if doc.Metadata.ResourceVersion != rv {
		e.t.Fatalf("resourceVersion %q in document, %q returned", doc.Metadata.ResourceVersion, rv)
	}
	return doc, rv
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func testPod(name string, uid types.UID, sources ...corev1.VolumeProjection) *corev1.Pod {
	if len(sources) == 0 {
		sources = []corev1.VolumeProjection{satSource("", nil, "token")}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: uid},
		Spec:       corev1.PodSpec{Volumes: []corev1.Volume{projected(sources...)}},
	}
}

func TestTokensRequestAndDocument(t *testing.T) {
	e := newEnv(t)
	pod := testPod("web-1", "uid-1", satSource("", nil, "token"), satSource("vault", ptr[int64](600), "vault"))
	pod.Spec.ServiceAccountName = "web"

	doc, rv := e.tokens(pod)

	if n := e.api.numCalls(); n != 2 {
		t.Fatalf("%d CreateToken calls, want 2", n)
	}
	c := e.api.call(0)
	if c.namespace != "default" || c.serviceAccount != "web" {
		t.Errorf("request for %s/%s, want default/web", c.namespace, c.serviceAccount)
	}
	spec := c.req.Spec
	if spec.Audiences != nil {
		t.Errorf("empty audience sent as %q, want none", spec.Audiences)
	}
	if *spec.ExpirationSeconds != 3600 {
		t.Errorf("expirationSeconds = %d, want 3600", *spec.ExpirationSeconds)
	}
	want := authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "web-1", UID: "uid-1"}
	if spec.BoundObjectRef == nil || *spec.BoundObjectRef != want {
		t.Errorf("boundObjectRef = %+v, want %+v", spec.BoundObjectRef, want)
	}
	if a := e.api.call(1).req.Spec.Audiences; len(a) != 1 || a[0] != "vault" {
		t.Errorf("audiences = %q, want [vault]", a)
	}

	if doc.APIVersion != "edge.skerry.io/v1" || doc.Kind != "PodTokens" || doc.ServiceAccountName != "web" {
		t.Errorf("header = %s %s %s", doc.APIVersion, doc.Kind, doc.ServiceAccountName)
	}
	if m := doc.Metadata; m.Namespace != "default" || m.Name != "web-1" || m.UID != "uid-1" || rv == "" {
		t.Errorf("metadata = %+v", m)
	}
	wantTokens := []Token{
		{Audience: "", ExpirationSeconds: 3600, Path: "token", Token: "tok-1", ExpirationTimestamp: metav1.NewTime(t0.Add(time.Hour))},
		{Audience: "vault", ExpirationSeconds: 600, Path: "vault", Token: "tok-2", ExpirationTimestamp: metav1.NewTime(t0.Add(10 * time.Minute))},
	}
	if len(doc.Tokens) != len(wantTokens) {
		t.Fatalf("tokens = %+v", doc.Tokens)
	}
	for i, w := range wantTokens {
		g := doc.Tokens[i]
		if g.Audience != w.Audience || g.ExpirationSeconds != w.ExpirationSeconds || g.Path != w.Path ||
			g.Token != w.Token || !g.ExpirationTimestamp.Equal(&w.ExpirationTimestamp) {
			t.Errorf("token %d = %+v, want %+v", i, g, w)
		}
	}
	raw, _, _ := e.m.Tokens(context.Background(), pod)
	if !strings.Contains(string(raw), `"expirationTimestamp":"2026-11-22T01:00:00Z"`) {
		t.Errorf("document %s lacks the RFC 3339 expiry", raw)
	}
}

func TestTokensCached(t *testing.T) {
	e := newEnv(t)
	pod := testPod("web-1", "uid-1")
	_, rv1 := e.tokens(pod)
	e.clock.Step(47 * time.Minute) // before 80 % of an hour
	doc, rv2 := e.tokens(pod)
	if n := e.api.numCalls(); n != 1 {
		t.Fatalf("%d CreateToken calls, want 1 (cached)", n)
	}
	if rv1 != rv2 || doc.Tokens[0].Token != "tok-1" {
		t.Fatalf("cache hit changed the document: rv %q -> %q, token %q", rv1, rv2, doc.Tokens[0].Token)
	}
	if s := e.m.Stats(); s.Issued != 1 || s.Refreshed != 0 || s.Failures != 0 || s.Pods != 1 {
		t.Errorf("stats = %+v", s)
	}
}

// Without Run, a stale token is re-issued on demand; resourceVersion follows the token.
func TestTokensStaleReissuedOnDemand(t *testing.T) {
	e := newEnv(t)
	pod := testPod("web-1", "uid-1")
	_, rv1 := e.tokens(pod)
	e.clock.Step(48 * time.Minute)
	doc, rv2 := e.tokens(pod)
	if n := e.api.numCalls(); n != 2 || doc.Tokens[0].Token != "tok-2" {
		t.Fatalf("%d calls, token %q; want a re-issue", n, doc.Tokens[0].Token)
	}
	if rv1 == rv2 {
		t.Fatalf("resourceVersion %q unchanged after re-issue", rv1)
	}
	if s := e.m.Stats(); s.Issued != 2 || s.Refreshed != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestRunRefreshesAt80Percent(t *testing.T) {
	e := newEnv(t)
	e.run()
	pod := testPod("web-1", "uid-1")
	_, rv1 := e.tokens(pod)

	e.waitTimer(t0.Add(48 * time.Minute))
	e.clock.Step(48*time.Minute - time.Second)
	if n := e.api.numCalls(); n != 1 {
		t.Fatalf("refreshed before 80 %% of the lifetime: %d calls", n)
	}
	e.clock.Step(time.Second)
	eventually(t, "OnRefresh", func() bool { return e.refreshCount("default/web-1") == 1 })
	// The next refresh is 80 % of the new token's hour after its issue.
	e.waitTimer(t0.Add(96 * time.Minute))
	if n, r := e.api.numCalls(), e.refreshCount("default/web-1"); n != 2 || r != 1 {
		t.Fatalf("after one refresh: %d calls, %d OnRefresh; want 2, 1", n, r)
	}

	doc, rv2 := e.tokens(pod)
	if doc.Tokens[0].Token != "tok-2" || rv2 == rv1 {
		t.Fatalf("after refresh: token %q rv %q (was %q)", doc.Tokens[0].Token, rv2, rv1)
	}
	if n := e.api.numCalls(); n != 2 {
		t.Fatalf("Tokens after a refresh called the API: %d calls", n)
	}
	_, rv3 := e.tokens(pod)
	if rv3 != rv2 {
		t.Fatalf("resourceVersion changed without a new token: %q -> %q", rv2, rv3)
	}

	e.clock.Step(48 * time.Minute)
	eventually(t, "second OnRefresh", func() bool { return e.refreshCount("default/web-1") == 2 })
	e.waitTimer(t0.Add(144 * time.Minute))
	if n := e.api.numCalls(); n != 3 {
		t.Fatalf("%d calls after two refreshes, want 3", n)
	}
	if s := e.m.Stats(); s.Issued != 3 || s.Refreshed != 2 {
		t.Errorf("stats = %+v", s)
	}
}

// Tokens of several pods and lifetimes are each refreshed at their own time.
func TestRunRefreshesEachPodWhenDue(t *testing.T) {
	e := newEnv(t)
	e.run()
	e.tokens(testPod("a", "uid-a", satSource("", ptr[int64](1000), "t")))
	e.tokens(testPod("b", "uid-b", satSource("", ptr[int64](2000), "t")))
	e.waitTimer(t0.Add(800 * time.Second))
	e.clock.Step(800 * time.Second)
	eventually(t, "refresh of a", func() bool { return e.refreshCount("default/a") == 1 })
	e.waitTimer(t0.Add(1600 * time.Second)) // b's, and a's next
	if r := e.refreshCount("default/b"); r != 0 {
		t.Fatalf("b refreshed %d times before its time", r)
	}
	e.clock.Step(800 * time.Second)
	eventually(t, "refresh of b", func() bool { return e.refreshCount("default/b") == 1 })
	eventually(t, "second refresh of a", func() bool { return e.refreshCount("default/a") == 2 })
}

func TestServerExtendedExpiry(t *testing.T) {
	e := newEnv(t)
	e.api.set(func(f *fakeAPI) { f.lifetime = 2 * time.Hour })
	e.run()
	pod := testPod("web-1", "uid-1")
	doc, _ := e.tokens(pod)
	if want := metav1.NewTime(t0.Add(2 * time.Hour)); !doc.Tokens[0].ExpirationTimestamp.Equal(&want) {
		t.Errorf("expirationTimestamp = %v, want the server's %v", doc.Tokens[0].ExpirationTimestamp, want)
	}
	if doc.Tokens[0].ExpirationSeconds != 3600 {
		t.Errorf("expirationSeconds = %d, want the requested 3600", doc.Tokens[0].ExpirationSeconds)
	}
	// 80 % of the two hours granted, not of the hour asked for.
	e.waitTimer(t0.Add(96 * time.Minute))
	e.clock.Step(96 * time.Minute)
	eventually(t, "OnRefresh", func() bool { return e.refreshCount("default/web-1") == 1 })

	// A year-long token (--service-account-extend-token-expiration) still rotates daily.
	e.api.set(func(f *fakeAPI) { f.lifetime = 365 * 24 * time.Hour })
	e.clock.Step(96 * time.Minute)
	eventually(t, "second OnRefresh", func() bool { return e.refreshCount("default/web-1") == 2 })
	e.waitTimer(t0.Add(192*time.Minute + 24*time.Hour))
}

func TestUIDChangeReissues(t *testing.T) {
	e := newEnv(t)
	e.run()
	old := testPod("web-1", "uid-1")
	_, rv1 := e.tokens(old)
	e.waitTimer(t0.Add(48 * time.Minute))

	e.clock.Step(10 * time.Minute)
	doc, rv2 := e.tokens(testPod("web-1", "uid-2"))
	if n := e.api.numCalls(); n != 2 {
		t.Fatalf("%d calls, want a new token for the re-created pod", n)
	}
	if ref := e.api.call(1).req.Spec.BoundObjectRef; ref.UID != "uid-2" {
		t.Errorf("bound to uid %q, want uid-2", ref.UID)
	}
	if doc.Metadata.UID != "uid-2" || doc.Tokens[0].Token != "tok-2" || rv1 == rv2 {
		t.Errorf("document after re-creation: %+v", doc)
	}
	if s := e.m.Stats(); s.Pods != 1 || s.Refreshed != 0 {
		t.Errorf("stats = %+v", s)
	}
	// The old pod's refresh time passes without a request; Run re-arms for the new pod's.
	e.clock.Step(38 * time.Minute)
	e.waitTimer(t0.Add(58 * time.Minute))
	if n := e.api.numCalls(); n != 2 {
		t.Fatalf("%d calls: the old pod's token was refreshed", n)
	}
	e.clock.Step(10 * time.Minute)
	eventually(t, "OnRefresh", func() bool { return e.refreshCount("default/web-1") == 1 })
	e.waitTimer(t0.Add(106 * time.Minute))
	if n := e.api.numCalls(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

func TestForgetStopsRefresh(t *testing.T) {
	e := newEnv(t)
	e.run()
	e.tokens(testPod("gone", "uid-1"))
	e.waitTimer(t0.Add(48 * time.Minute))
	e.m.Forget("default", "gone")
	if s := e.m.Stats(); s.Pods != 0 {
		t.Fatalf("stats after Forget = %+v", s)
	}
	e.clock.Step(time.Hour)
	// A later pod proves Run went round its loop after the forgotten pod's time passed.
	e.tokens(testPod("other", "uid-2"))
	e.waitTimer(t0.Add(time.Hour + 48*time.Minute))
	if n, r := e.api.numCalls(), e.refreshCount("default/gone"); n != 2 || r != 0 {
		t.Fatalf("forgotten pod: %d calls, %d OnRefresh; want 2 calls, none", n, r)
	}
}

func TestNoProjectionForgets(t *testing.T) {
	e := newEnv(t)
	e.tokens(testPod("web-1", "uid-1"))
	pod := testPod("web-1", "uid-1")
	pod.Spec.Volumes = nil
	raw, rv, err := e.m.Tokens(context.Background(), pod)
	if raw != nil || rv != "" || err != nil {
		t.Fatalf("Tokens(no projection) = %s, %q, %v", raw, rv, err)
	}
	if s := e.m.Stats(); s.Pods != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestConcurrentTokensOneRequest(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	e.api.set(func(f *fakeAPI) { f.gate = gate })
	pod := testPod("web-1", "uid-1")

	const n = 16
	var started, done sync.WaitGroup
	started.Add(n)
	done.Add(n)
	results := make([]string, n)
	for i := range n {
		go func() {
			defer done.Done()
			started.Done()
			raw, _, err := e.m.Tokens(context.Background(), pod)
			if err != nil {
				t.Errorf("Tokens: %v", err)
				return
			}
			results[i] = string(raw)
		}()
	}
	started.Wait()
	eventually(t, "the first request", func() bool { return e.api.numCalls() == 1 })
	close(gate)
	done.Wait()
	if c := e.api.numCalls(); c != 1 {
		t.Fatalf("%d concurrent Tokens made %d requests, want 1", n, c)
	}
	for i := range results {
		if results[i] != results[0] {
			t.Fatalf("results differ:\n%s\n%s", results[0], results[i])
		}
	}
}

// A waiter whose context ends stops waiting for another caller's request.
func TestTokensWaiterCancelled(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	e.api.set(func(f *fakeAPI) { f.gate = gate })
	pod := testPod("web-1", "uid-1")
	first := make(chan error, 1)
	go func() {
		_, _, err := e.m.Tokens(context.Background(), pod)
		first <- err
	}()
	eventually(t, "the first request", func() bool { return e.api.numCalls() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := e.m.Tokens(ctx, pod); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("cancelled waiter: %v", err)
	}
	close(gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

func TestForgetDuringRequest(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	e.api.set(func(f *fakeAPI) { f.gate = gate })
	got := make(chan error, 1)
	go func() {
		raw, _, err := e.m.Tokens(context.Background(), testPod("web-1", "uid-1"))
		if err == nil && raw == nil {
			err = fmt.Errorf("no document")
		}
		got <- err
	}()
	eventually(t, "the request", func() bool { return e.api.numCalls() == 1 })
	e.m.Forget("default", "web-1")
	close(gate)
	if err := <-got; err != nil {
		t.Fatalf("Tokens: %v", err)
	}
	if s := e.m.Stats(); s.Pods != 0 {
		t.Fatalf("a pod forgotten during its request was cached: %+v", s)
	}
}

func TestErrors(t *testing.T) {
	sa := schema.GroupResource{Resource: "serviceaccounts"}
	for _, tc := range []struct {
		name  string
		err   error
		check func(error) bool
		text  string
	}{
		{"not found", apierrors.NewNotFound(sa, "web"), apierrors.IsNotFound, "missing or not permitted"},
		{"forbidden", apierrors.NewForbidden(sa, "web", fmt.Errorf("no")), apierrors.IsForbidden, "missing or not permitted"},
		{"transient", apierrors.NewServiceUnavailable("busy"), apierrors.IsServiceUnavailable, "audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.api.set(func(f *fakeAPI) { f.err = tc.err })
			pod := testPod("web-1", "uid-1")
			pod.Spec.ServiceAccountName = "web"
			raw, _, err := e.m.Tokens(context.Background(), pod)
			if err == nil || raw != nil {
				t.Fatalf("Tokens = %s, %v; want an error", raw, err)
			}
			if !tc.check(err) {
				t.Errorf("error %v does not wrap the API error", err)
			}
			for _, s := range []string{"default/web-1", `"web"`, tc.text} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if s := e.m.Stats(); s.Failures != 1 || s.Pods != 0 || s.Issued != 0 {
				t.Errorf("stats = %+v", s)
			}
			// The owner retries later.
			e.api.set(func(f *fakeAPI) { f.err = nil })
			e.tokens(pod)
		})
	}
}

func TestRefreshFailureBacksOff(t *testing.T) {
	e := newEnv(t)
	e.run()
	pod := testPod("web-1", "uid-1")
	_, rv1 := e.tokens(pod)
	e.waitTimer(t0.Add(48 * time.Minute))

	e.api.set(func(f *fakeAPI) { f.err = apierrors.NewServiceUnavailable("busy") })
	e.clock.Step(48 * time.Minute)
	now := t0.Add(48 * time.Minute)
	for i, d := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		now = now.Add(d)
		e.waitTimer(now)
		if n := e.api.numCalls(); n != i+2 {
			t.Fatalf("%d calls after %d failures", n, i+1)
		}
		if i < 2 {
			e.clock.Step(d)
		}
	}
	// In backoff, the still valid token is served without asking again.
	doc, rv := e.tokens(pod)
	if doc.Tokens[0].Token != "tok-1" || rv != rv1 || e.api.numCalls() != 4 {
		t.Fatalf("during backoff: token %q rv %q, %d calls", doc.Tokens[0].Token, rv, e.api.numCalls())
	}
	if r := e.refreshCount("default/web-1"); r != 0 {
		t.Fatalf("OnRefresh called %d times for failed refreshes", r)
	}

	e.api.set(func(f *fakeAPI) { f.err = nil })
	e.clock.Step(4 * time.Second)
	eventually(t, "OnRefresh", func() bool { return e.refreshCount("default/web-1") == 1 })
	if s := e.m.Stats(); s.Failures != 3 || s.Refreshed != 1 {
		t.Errorf("stats = %+v", s)
	}
	// Back to the normal schedule: 80 % after the successful issue.
	e.waitTimer(t0.Add(48*time.Minute + 7*time.Second + 48*time.Minute))
}

func TestBackoffCapped(t *testing.T) {
	var prev time.Duration
	for i := 1; i < 100; i++ {
		d := backoff(i)
		if d < prev || d > retryMax {
			t.Fatalf("backoff(%d) = %v after %v", i, d, prev)
		}
		prev = d
	}
	if prev != retryMax {
		t.Fatalf("backoff never reaches the cap: %v", prev)
	}
}

// An expired token whose refresh fails is not served.
func TestExpiredTokenNotServed(t *testing.T) {
	e := newEnv(t)
	pod := testPod("web-1", "uid-1")
	e.tokens(pod)
	e.api.set(func(f *fakeAPI) { f.err = apierrors.NewServiceUnavailable("busy") })
	e.clock.Step(50 * time.Minute)
	if _, _, err := e.m.Tokens(context.Background(), pod); err != nil {
		t.Fatalf("stale but valid token: %v", err)
	}
	e.clock.Step(10 * time.Minute)
	if raw, _, err := e.m.Tokens(context.Background(), pod); err == nil {
		t.Fatalf("expired token served: %s", raw)
	}
}

func TestRunReturnsOnCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	e := newEnv(t)
	e.tokens(testPod("web-1", "uid-1"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.m.Run(ctx)
	}()
	e.waitTimer(t0.Add(48 * time.Minute))
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if e.clock.HasWaiters() {
		t.Error("Run left its timer armed")
	}
	eventually(t, "goroutines to finish", func() bool { return runtime.NumGoroutine() <= before })
}

// When one of a pod's tokens cannot be issued, the others are kept and Run retries the missing
// one after the backoff, then tells the owner.
func TestPartialFailureRetriedByRun(t *testing.T) {
	e := newEnv(t)
	e.api.set(func(f *fakeAPI) { f.failAudience = "vault" })
	e.run()
	pod := testPod("web-1", "uid-1", satSource("", nil, "token"), satSource("vault", nil, "vault"))
	if _, _, err := e.m.Tokens(context.Background(), pod); err == nil || !strings.Contains(err.Error(), "vault") {
		t.Fatalf("Tokens with a failing audience: %v", err)
	}
	if s := e.m.Stats(); s.Pods != 1 || s.Issued != 1 || s.Failures != 1 {
		t.Fatalf("stats = %+v", s)
	}
	e.waitTimer(t0.Add(time.Second))
	e.api.set(func(f *fakeAPI) { f.failAudience = "" })
	e.clock.Step(time.Second)
	eventually(t, "OnRefresh", func() bool { return e.refreshCount("default/web-1") == 1 })
	doc, _ := e.tokens(pod)
	if len(doc.Tokens) != 2 || doc.Tokens[0].Token != "tok-1" || doc.Tokens[1].Token != "tok-3" {
		t.Fatalf("tokens = %+v", doc.Tokens)
	}
	if n := e.api.numCalls(); n != 3 {
		t.Fatalf("%d calls, want 3 (the good token is not re-issued)", n)
	}
}

// A pod forgotten while Run refreshes it is neither cached nor reported.
func TestForgetDuringRefresh(t *testing.T) {
	e := newEnv(t)
	e.run()
	e.tokens(testPod("web-1", "uid-1"))
	e.waitTimer(t0.Add(48 * time.Minute))
	gate := make(chan struct{})
	e.api.set(func(f *fakeAPI) { f.gate = gate })
	e.clock.Step(48 * time.Minute)
	eventually(t, "the refresh request", func() bool { return e.api.numCalls() == 2 })
	e.m.Forget("default", "web-1")
	close(gate)
	e.api.set(func(f *fakeAPI) { f.gate = nil })
	e.tokens(testPod("other", "uid-2"))
	e.waitTimer(t0.Add(96 * time.Minute))
	if r, s := e.refreshCount("default/web-1"), e.m.Stats(); r != 0 || s.Pods != 1 {
		t.Fatalf("forgotten during refresh: %d OnRefresh, stats %+v", r, s)
	}
}
