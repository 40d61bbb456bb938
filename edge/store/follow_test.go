package store

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/skerry-io/skerry/pkg/wire"
)

// TestFollowRelistsWhenBehind: from a compacted revision Follow lists again and watches on
// from the listed revision; changes after that reach the handler; ctx ends it cleanly.
func TestFollowRelistsWhenBehind(t *testing.T) {
	opts := fastOptions()
	opts.ChangeLog = 4
	db := openT(t, t.TempDir(), opts)
	for i := range 20 {
		applyT(t, db, podMsg(wire.OpUpdate, "default/pod/p", "u", strconv.Itoa(i)))
	}
	var mu sync.Mutex
	var relists int
	var seen []int64
	relisted := make(chan struct{}, 1)
	handled := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- db.Follow(ctx, 1, func(context.Context) (int64, error) {
			mu.Lock()
			relists++
			mu.Unlock()
			// The revision the relist covers is read before the test may write again:
			// read after, it would cover the test's change, which then is rightly not
			// delivered as an event.
			rev := db.Revision()
			relisted <- struct{}{}
			return rev, nil
		}, func(ev Event) {
			mu.Lock()
			seen = append(seen, ev.Revision)
			mu.Unlock()
			handled <- struct{}{}
		}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	waitChan(t, relisted, "a relist for the compacted revision")
	rev := db.Revision()
	applyT(t, db, podMsg(wire.OpUpdate, "default/pod/p", "u", "new"))
	waitChan(t, handled, "the change after the relist")
	cancel()
	if err := waitErr(t, done); err != nil {
		t.Fatalf("Follow: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if relists != 1 || len(seen) != 1 || seen[0] != rev+1 {
		t.Errorf("relists %d, handled revisions %v, want 1 and [%d]", relists, seen, rev+1)
	}
}

func waitChan(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-timeAfter():
		t.Fatalf("timed out waiting for %s", what)
	}
}

func waitErr(t *testing.T, c <-chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-timeAfter():
		t.Fatal("Follow did not return after ctx ended")
	}
	return nil
}

func timeAfter() <-chan time.Time { return time.After(waitTimeout) }
