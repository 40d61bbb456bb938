package report

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

func open(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), t.TempDir(), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func entries(t *testing.T, db *store.DB) []store.Entry {
	t.Helper()
	es, err := db.Outbox().Next(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func TestPodStatusOnlyWhenChangedAndCoalesced(t *testing.T) {
	db := open(t)
	notified := 0
	r := New(db.Outbox(), func() { notified++ }, "edge-1", nil)
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"}}
	running := corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.88.0.5"}
	for range 3 {
		if err := r.PodStatus(ctx, pod, running); err != nil {
			t.Fatal(err)
		}
	}
	if es := entries(t, db); len(es) != 1 || notified != 1 {
		t.Fatalf("%d entries, %d notifications for one unchanged status, want 1 and 1", len(es), notified)
	}
	if err := r.PodStatus(ctx, pod, corev1.PodStatus{Phase: corev1.PodSucceeded}); err != nil {
		t.Fatal(err)
	}
	es := entries(t, db)
	if len(es) != 1 {
		t.Fatalf("%d entries: a newer status must replace the pending one", len(es))
	}
	m := es[0].Message
	if m.Route.Operation != wire.OpUpdate || m.Route.Resource != "ns/podstatus/web" {
		t.Errorf("route %+v", m.Route)
	}
	var got corev1.Pod
	if err := json.Unmarshal(m.Content, &got); err != nil || got.UID != "u1" || got.Status.Phase != corev1.PodSucceeded {
		t.Errorf("content %s (%v)", m.Content, err)
	}
}

// run starts r.Run and returns a function that stops it and waits for it.
func run(r *Reporter) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() { cancel(); <-done }
}

func TestPodDeletedAndEvents(t *testing.T) {
	db := open(t)
	r := New(db.Outbox(), nil, "edge-1", nil)
	now := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"}}
	r.Event(ctx, pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container")
	r.Event(ctx, pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container") // repeat: dropped
	now = now.Add(2 * eventRepeat)
	r.Event(ctx, pod, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container")
	if es := entries(t, db); len(es) != 0 {
		t.Fatalf("%d entries before Run: events are written by Run", len(es))
	}
	run(r)() // stopping Run writes what is queued
	if err := r.PodDeleted(ctx, pod); err != nil {
		t.Fatal(err)
	}
	es := entries(t, db)
	if len(es) != 3 {
		t.Fatalf("%d entries, want two events and the deletion", len(es))
	}
	var ev corev1.Event
	if err := json.Unmarshal(es[0].Message.Content, &ev); err != nil || ev.InvolvedObject.UID != "u1" ||
		ev.InvolvedObject.Kind != "Pod" || ev.Reason != "BackOff" || ev.Source.Host != "edge-1" {
		t.Errorf("event %s (%v)", es[0].Message.Content, err)
	}
	if k, _ := wire.ParseResource(es[0].Message.Route.Resource); k.Type != wire.TypeEvent || k.Namespace != "ns" || k.Name != ev.Name {
		t.Errorf("event resource %s", es[0].Message.Route.Resource)
	}
	del := es[2].Message
	if del.Route.Operation != wire.OpDelete || del.Route.Resource != "ns/pod/web" || string(del.Content) != `{"metadata":{"uid":"u1"}}` {
		t.Errorf("deletion %s %s %s", del.Route.Operation, del.Route.Resource, del.Content)
	}
}

func TestEventsWrittenByRunAndWhenTheQueueIsFull(t *testing.T) {
	db := open(t)
	r := New(db.Outbox(), nil, "edge-1", nil)
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"}}
	// Without Run, the queue fills and then Event writes itself: nothing is dropped.
	for i := range eventQueue + 3 {
		r.Event(ctx, pod, corev1.EventTypeNormal, "Pulled", fmt.Sprint("image ", i))
	}
	if n := db.Outbox().Stats().Entries; n != 3 {
		t.Fatalf("%d entries written with a full queue, want 3", n)
	}
	stop := run(r)
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for db.Outbox().Stats().Entries != eventQueue+3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries, want %d: Run did not write the queue", db.Outbox().Stats().Entries, eventQueue+3)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
