package nodestatus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// reporterGoroutines lists the goroutines running the package's code, to prove Run leaves
// none behind.
func reporterGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("edge/nodestatus.(*Reporter)")) {
			out = append(out, string(g))
		}
	}
	return out
}

func startRun(t *testing.T, r *Reporter) (cancel func(), done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- r.Run(ctx) }()
	t.Cleanup(cancel)
	return cancel, ch
}

func waitDone(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
		return nil
	}
}

func TestRun(t *testing.T) {
	e := newTestEnv(t, testConfig())
	cancel, done := startRun(t, e.r)

	reg := e.out.wait(t)
	if reg.msg.Route.Resource != "null/node/edge-1" || reg.msg.Route.Operation != wire.OpInsert || reg.class != store.FIFO {
		t.Fatalf("first message %+v, want the registration", reg.msg.Route)
	}
	lease := e.out.wait(t)
	if lease.msg.Route.Resource != "kube-node-lease/lease/edge-1" || lease.class != store.Coalesced {
		t.Fatalf("second message %+v, want the lease", lease.msg.Route)
	}
	e.clock.waitTickers(t, 2)

	// One lease renewal per interval (the unchanged status is not sent: see
	// TestStatusChangeDetection).
	e.clock.Step(5 * time.Second)
	e.clock.Step(5 * time.Second)
	got := e.out.wait(t)
	if got.msg.Route.Resource != "kube-node-lease/lease/edge-1" {
		t.Fatalf("got %+v, want a lease renewal", got.msg.Route)
	}
	if l := decode[coordinationv1.Lease](t, got.msg); !l.Spec.RenewTime.Time.Equal(e.clock.Now()) {
		t.Errorf("renewTime %v, want %v", l.Spec.RenewTime, e.clock.Now())
	}

	// The runtime goes away: the next status tick reports it, alongside the lease.
	e.rt.setErr(errors.New("connection refused"))
	e.clock.Step(10 * time.Second)
	seen := map[string]enqueued{}
	for range 2 {
		m := e.out.wait(t)
		seen[m.msg.Route.Resource] = m
	}
	st, ok := seen["null/nodestatus/edge-1"]
	if !ok || seen["kube-node-lease/lease/edge-1"].msg == nil {
		t.Fatalf("got %v, want a status update and a lease", seen)
	}
	if c := condition(t, decode[corev1.Node](t, st.msg).Status, corev1.NodeReady); c.Status != corev1.ConditionFalse {
		t.Errorf("Ready %+v", c)
	}

	cancel()
	if err := waitDone(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if gs := reporterGoroutines(); len(gs) > 0 {
		t.Errorf("goroutines left after Run returned:\n%s", strings.Join(gs, "\n\n"))
	}
	if n := e.notified(); n != 5 {
		t.Errorf("Notify called %d times, want one per enqueue (5)", n)
	}
	if err := e.r.Run(context.Background()); err == nil {
		t.Error("a second Run must be refused")
	}
}

// TestRunRetriesRegistration: the lease waits for the registration, which is retried at
// every status tick while the outbox refuses it.
func TestRunRetriesRegistration(t *testing.T) {
	e := newTestEnv(t, testConfig())
	e.out.setErr(fmt.Errorf("%w: no room", store.ErrOutboxFull))
	cancel, done := startRun(t, e.r)
	e.clock.waitTickers(t, 1) // the status ticker; the lease loop waits for the registration
	e.out.setErr(nil)
	e.clock.Step(10 * time.Second)
	if got := e.out.wait(t); got.msg.Route.Operation != wire.OpInsert {
		t.Fatalf("got %+v, want the registration", got.msg.Route)
	}
	if got := e.out.wait(t); got.msg.Route.Resource != "kube-node-lease/lease/edge-1" {
		t.Fatalf("got %+v, want the lease after the registration", got.msg.Route)
	}
	cancel()
	if err := waitDone(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestRunStopsOnUnusableStore(t *testing.T) {
	e := newTestEnv(t, testConfig())
	e.out.setErr(fmt.Errorf("store: outbox: %w", store.ErrCorrupt))
	_, done := startRun(t, e.r)
	if err := waitDone(t, done); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Run: %v, want ErrCorrupt", err)
	}
	if gs := reporterGoroutines(); len(gs) > 0 {
		t.Errorf("goroutines left:\n%s", strings.Join(gs, "\n\n"))
	}
}

// TestCoalescingThroughRealOutbox: while offline, many status updates and lease renewals
// leave one entry each behind the registration, carrying the newest state.
func TestCoalescingThroughRealOutbox(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir(), store.Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e := newTestEnv(t, testConfig())
	e.r.outbox = db.Outbox()

	if err := e.r.syncStatus(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		e.clock.Step(10 * time.Second)
		if i%2 == 0 {
			e.rt.setErr(errors.New("down"))
		} else {
			e.rt.setErr(nil)
		}
		if err := e.r.syncStatus(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.r.renewLease(ctx); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := db.Outbox().Next(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, en := range entries {
		keys = append(keys, fmt.Sprintf("%s/%s", en.Key, en.Class))
	}
	want := []string{"null/node/edge-1/fifo", "null/nodestatus/edge-1/coalesced", "kube-node-lease/lease/edge-1/coalesced"}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Fatalf("outbox holds %v, want %v", keys, want)
	}
	if st := db.Outbox().Stats(); st.Coalesced != 19+19 {
		t.Errorf("coalesced %d replacements, want 38 (19 statuses, 19 leases)", st.Coalesced)
	}
	// The survivors are the newest versions: Ready True (the last loop had the runtime
	// back) and the last renewal time.
	n := decode[corev1.Node](t, entries[1].Message)
	if c := condition(t, n.Status, corev1.NodeReady); c.Status != corev1.ConditionTrue || !c.LastHeartbeatTime.Time.Equal(e.clock.Now()) {
		t.Errorf("newest status Ready %+v", c)
	}
	l := decode[coordinationv1.Lease](t, entries[2].Message)
	if !l.Spec.RenewTime.Time.Equal(e.clock.Now()) {
		t.Errorf("lease renewTime %v, want %v", l.Spec.RenewTime, e.clock.Now())
	}
}

// imageRuntime is a runtime that also lists images.
type imageRuntime struct {
	*fakeRuntime
	images []corev1.ContainerImage
}

func (r imageRuntime) Images(context.Context) ([]corev1.ContainerImage, error) { return r.images, nil }

func TestStatusListsTheRuntimesImages(t *testing.T) {
	e := newTestEnv(t, testConfig())
	imgs := []corev1.ContainerImage{{Names: []string{"127.0.0.1:5000/library/busybox:latest"}, SizeBytes: 1 << 20}}
	e.r.rt = imageRuntime{fakeRuntime: e.rt, images: imgs}
	st, err := e.r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Images) != 1 || st.Images[0].Names[0] != imgs[0].Names[0] {
		t.Errorf("images %+v, want the runtime's", st.Images)
	}
}
