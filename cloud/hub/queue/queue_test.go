package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/skerry-io/skerry/pkg/wire"
)

// fakeClock moves only when a test steps it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]struct{}
}

type fakeTimer struct {
	clk *fakeClock
	at  time.Time
	c   chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), timers: map[*fakeTimer]struct{}{}}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clk: c, at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
	} else {
		c.timers[t] = struct{}{}
	}
	return t
}

// Step advances the clock and fires the timers due.
func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.timers {
		if !t.at.After(c.now) {
			t.c <- c.now
			delete(c.timers, t)
		}
	}
}

// Waiters is the number of armed timers.
func (c *fakeClock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	_, ok := t.clk.timers[t]
	delete(t.clk.timers, t)
	return ok
}

const (
	ackTimeout = 10 * time.Second
	initial    = time.Second
	maxBackoff = 30 * time.Second
)

// newTestQueue returns a queue on a fake clock without jitter, so delays are exact.
func newTestQueue(t *testing.T, maxKeys int) (*NodeQueue, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	q := New(Options{MaxKeys: maxKeys, AckTimeout: ackTimeout, InitialBackoff: initial,
		MaxBackoff: maxBackoff, Clock: clk, Jitter: func() float64 { return 0 }})
	t.Cleanup(q.Close)
	return q, clk
}

func pod(name string) wire.Key { return wire.Key{Namespace: "default", Type: wire.TypePod, Name: name} }

func msg(id string) *wire.Message {
	return &wire.Message{Header: wire.Header{ID: id},
		Route: wire.Route{Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: "default/pod/x"}}
}

func upsert(t *testing.T, q *NodeQueue, k wire.Key, uid, rv, id string) {
	t.Helper()
	if err := q.Upsert(k, Version{UID: uid, ResourceVersion: rv}, msg(id)); err != nil {
		t.Fatalf("Upsert(%s, %s/%s): %v", k, uid, rv, err)
	}
}

func del(t *testing.T, q *NodeQueue, k wire.Key, uid, id string) {
	t.Helper()
	if err := q.Delete(k, uid, msg(id)); err != nil {
		t.Fatalf("Delete(%s, %s): %v", k, uid, err)
	}
}

// next returns the item ready now. A done context makes Next return at once when nothing is.
func next(t *testing.T, q *NodeQueue) Item {
	t.Helper()
	it, ok := tryNext(q)
	if !ok {
		t.Fatalf("Next: nothing ready, stats %+v", q.Stats())
	}
	return it
}

func tryNext(q *NodeQueue) (Item, bool) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	it, err := q.Next(ctx)
	return it, err == nil
}

func wantNothing(t *testing.T, q *NodeQueue) {
	t.Helper()
	if it, ok := tryNext(q); ok {
		t.Fatalf("Next = %s %+v (msg %s), want nothing ready", it.Key, it.Version, it.Msg.Header.ID)
	}
}

func wantItem(t *testing.T, it Item, k wire.Key, id string, isDelete bool, attempt int) {
	t.Helper()
	if it.Key != k || it.Msg.Header.ID != id || it.Delete != isDelete || it.Attempt != attempt {
		t.Fatalf("Next = {key %s msg %s delete %v attempt %d}, want {key %s msg %s delete %v attempt %d}",
			it.Key, it.Msg.Header.ID, it.Delete, it.Attempt, k, id, isDelete, attempt)
	}
}

func wantEmpty(t *testing.T, q *NodeQueue) {
	t.Helper()
	if s := q.Stats(); s.Queued != 0 || s.InFlight != 0 {
		t.Fatalf("stats %+v, want nothing queued or in flight", s)
	}
}

// eventually polls cond until it holds or 10 s pass.
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

func TestOnlyTheNewestVersionIsSent(t *testing.T) {
	q, _ := newTestQueue(t, 10)
	for i := range 100 {
		upsert(t, q, pod("web"), "u1", fmt.Sprint(i), fmt.Sprint("m", i))
	}
	wantItem(t, next(t, q), pod("web"), "m99", false, 1)
	wantNothing(t, q)
	if !q.Ack("m99") {
		t.Fatal("Ack(m99) = false")
	}
	wantEmpty(t, q)
	if s := q.Stats(); s.Sent != 1 || s.Superseded != 99 || s.Acked != 1 {
		t.Fatalf("stats %+v, want 1 sent, 99 superseded, 1 acked", s)
	}
}

func TestOneMessageInFlightPerKey(t *testing.T) {
	q, _ := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "u", "1", "a1")
	wantItem(t, next(t, q), pod("a"), "a1", false, 1)

	upsert(t, q, pod("a"), "u", "2", "a2")
	upsert(t, q, pod("a"), "u", "3", "a3")
	upsert(t, q, pod("b"), "u", "1", "b1")
	// a waits for its ack; other keys are not held up by it.
	wantItem(t, next(t, q), pod("b"), "b1", false, 1)
	wantNothing(t, q)

	// The ack of the old version only clears the way: the newest version goes next.
	if !q.Ack("a1") {
		t.Fatal("Ack(a1) = false")
	}
	wantItem(t, next(t, q), pod("a"), "a3", false, 1)
	if q.Ack("a2") {
		t.Fatal("Ack(a2) of a superseded, never sent message = true")
	}
	if !q.Ack("a3") || !q.Ack("b1") {
		t.Fatal("Ack of in-flight messages = false")
	}
	wantEmpty(t, q)
	if q.Ack("a3") {
		t.Fatal("second Ack(a3) = true")
	}
}

func TestAckOfANeverSentMessageIsIgnored(t *testing.T) {
	q, _ := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "u", "1", "a1")
	if q.Ack("a1") || q.Ack("nonsense") {
		t.Fatal("Ack of a message never handed out = true")
	}
	wantItem(t, next(t, q), pod("a"), "a1", false, 1)
}

func TestDeleteThenCreateOfTheSameNameKeepsItsOrder(t *testing.T) {
	q, _ := newTestQueue(t, 10)
	upsert(t, q, pod("web"), "A", "1", "a1")
	next(t, q)
	q.Ack("a1")

	del(t, q, pod("web"), "A", "delA")
	upsert(t, q, pod("web"), "B", "5", "b5")
	upsert(t, q, pod("web"), "B", "6", "b6")

	it := next(t, q)
	wantItem(t, it, pod("web"), "delA", true, 1)
	if it.Version.UID != "A" {
		t.Fatalf("delete carries uid %q, want A", it.Version.UID)
	}
	wantNothing(t, q)
	q.Ack("delA")
	wantItem(t, next(t, q), pod("web"), "b6", false, 1)
}

func TestDeleteReplacesAnUnsentUpsert(t *testing.T) {
	q, _ := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "A", "1", "a1")
	del(t, q, pod("a"), "A", "delA")
	wantItem(t, next(t, q), pod("a"), "delA", true, 1)
	wantNothing(t, q)

	// [delete A, upsert B] + delete B: B never reached the edge, one delete remains.
	q.Ack("delA")
	upsert(t, q, pod("b"), "A", "1", "b1")
	next(t, q)
	del(t, q, pod("b"), "A", "delbA")
	upsert(t, q, pod("b"), "B", "1", "bB")
	del(t, q, pod("b"), "B", "delbB")
	q.Ack("b1")
	wantItem(t, next(t, q), pod("b"), "delbB", true, 1)
	wantNothing(t, q)
}

func TestDeleteOfAnInFlightUpsertIsSentAfterIt(t *testing.T) {
	q, _ := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "A", "1", "a1")
	next(t, q)
	del(t, q, pod("a"), "A", "delA")
	wantNothing(t, q)
	q.Ack("a1")
	wantItem(t, next(t, q), pod("a"), "delA", true, 1)
}

func TestFullQueueRejectsNewKeysButNeverDeletes(t *testing.T) {
	q, _ := newTestQueue(t, 2)
	upsert(t, q, pod("a"), "u", "1", "a1")
	upsert(t, q, pod("b"), "u", "1", "b1")
	err := q.Upsert(pod("c"), Version{"u", "1"}, msg("c1"))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Upsert beyond MaxKeys: %v, want ErrFull", err)
	}
	// Updates of queued keys do not grow the queue; deletes must never be lost.
	upsert(t, q, pod("a"), "u", "2", "a2")
	del(t, q, pod("x"), "u", "delx")
	del(t, q, pod("y"), "u", "dely")
	if s := q.Stats(); s.Rejected != 1 || s.Queued != 4 {
		t.Fatalf("stats %+v, want 1 rejected, 4 queued", s)
	}
	got := map[string]bool{}
	for range 4 {
		it := next(t, q)
		got[it.Msg.Header.ID] = true
		q.Ack(it.Msg.Header.ID)
	}
	for _, id := range []string{"a2", "b1", "delx", "dely"} {
		if !got[id] {
			t.Errorf("%s was not sent; sent %v", id, got)
		}
	}
	wantEmpty(t, q)
	upsert(t, q, pod("c"), "u", "1", "c1") // room again
}

func TestUnackedMessageIsRetriedWithExponentialBackoff(t *testing.T) {
	q, clk := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "u", "1", "a1")
	wantItem(t, next(t, q), pod("a"), "a1", false, 1)

	// Each failure doubles the delay before the retry: 1 s, 2 s, 4 s, ... up to 30 s.
	for attempt, backoff := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
		backoff *= time.Second
		clk.Step(ackTimeout - time.Millisecond)
		wantNothing(t, q)
		clk.Step(time.Millisecond) // ack timeout
		wantNothing(t, q)
		clk.Step(backoff - time.Millisecond)
		wantNothing(t, q)
		clk.Step(time.Millisecond)
		wantItem(t, next(t, q), pod("a"), "a1", false, attempt+2)
	}
	if s := q.Stats(); s.Retries != 7 || s.Sent != 8 || s.InFlight != 1 {
		t.Fatalf("stats %+v, want 7 retries, 8 sent, 1 in flight", s)
	}
	// An ack resets the backoff of the key.
	q.Ack("a1")
	upsert(t, q, pod("a"), "u", "2", "a2")
	next(t, q)
	clk.Step(ackTimeout + initial)
	wantItem(t, next(t, q), pod("a"), "a2", false, 2)
}

func TestLateAckDuringBackoffCompletesTheKey(t *testing.T) {
	q, clk := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "u", "1", "a1")
	next(t, q)
	clk.Step(ackTimeout)
	wantNothing(t, q) // timed out, backing off
	if !q.Ack("a1") {
		t.Fatal("late Ack(a1) = false")
	}
	wantEmpty(t, q)
	clk.Step(time.Hour)
	wantNothing(t, q)
}

func TestNackRetriesAfterBackoff(t *testing.T) {
	q, clk := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "u", "1", "a1")
	next(t, q)
	if !q.Nack("a1") || q.Nack("a1") {
		t.Fatal("Nack of the in-flight message must succeed once")
	}
	wantNothing(t, q)
	clk.Step(initial)
	wantItem(t, next(t, q), pod("a"), "a1", false, 2)
}

func TestFailedDeleteIsRetriedBeforeANewerUpsert(t *testing.T) {
	q, clk := newTestQueue(t, 10)
	del(t, q, pod("a"), "A", "delA")
	next(t, q)
	upsert(t, q, pod("a"), "B", "1", "b1")
	clk.Step(ackTimeout + initial)
	wantItem(t, next(t, q), pod("a"), "delA", true, 2)
	q.Ack("delA")
	wantItem(t, next(t, q), pod("a"), "b1", false, 1)
}

func TestFailedUpsertIsSupersededByANewerVersion(t *testing.T) {
	q, clk := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "u", "1", "a1")
	next(t, q)
	upsert(t, q, pod("a"), "u", "2", "a2")
	clk.Step(ackTimeout + initial)
	wantItem(t, next(t, q), pod("a"), "a2", false, 1)
	if q.Ack("a1") {
		t.Fatal("Ack of the superseded attempt = true")
	}
}

func TestBlockedNextWakesForRetry(t *testing.T) {
	q, clk := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "u", "1", "a1")
	next(t, q)

	got := make(chan Item)
	go func() {
		it, err := q.Next(context.Background())
		if err != nil {
			t.Errorf("Next: %v", err)
		}
		got <- it
	}()
	eventually(t, "Next to wait on the ack timeout", func() bool { return clk.Waiters() == 1 })
	clk.Step(ackTimeout)
	eventually(t, "Next to wait on the backoff", func() bool { return clk.Waiters() == 1 })
	clk.Step(initial)
	select {
	case it := <-got:
		wantItem(t, it, pod("a"), "a1", false, 2)
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return after the backoff")
	}
}

func TestBlockedNextWakesForUpsert(t *testing.T) {
	q, _ := newTestQueue(t, 10)
	got := make(chan Item)
	go func() {
		it, _ := q.Next(context.Background())
		got <- it
	}()
	eventually(t, "Next to block", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.waiters == 1 })
	upsert(t, q, pod("a"), "u", "1", "a1")
	select {
	case it := <-got:
		wantItem(t, it, pod("a"), "a1", false, 1)
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return after Upsert")
	}
}

func TestCloseUnblocksNext(t *testing.T) {
	q, clk := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "u", "1", "a1")
	next(t, q) // one Next waits on a timer, the others on the queue
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			_, err := q.Next(context.Background())
			errs <- err
		})
	}
	eventually(t, "4 blocked Next calls", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.waiters == 4 })
	q.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Next after Close: %v, want ErrClosed", err)
		}
	}
	if n := clk.Waiters(); n != 0 {
		t.Errorf("%d timers left armed after Next returned", n)
	}
	if err := q.Upsert(pod("b"), Version{}, msg("b")); !errors.Is(err, ErrClosed) {
		t.Errorf("Upsert after Close: %v, want ErrClosed", err)
	}
}

func TestNextReturnsWhenTheContextEnds(t *testing.T) {
	q, _ := newTestQueue(t, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := q.Next(ctx); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next ignored its context")
	}
}

func TestDuplicateMessageIDIsRefused(t *testing.T) {
	q, _ := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "u", "1", "same")
	if err := q.Upsert(pod("b"), Version{"u", "1"}, msg("same")); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("Upsert with a tracked id: %v, want ErrDuplicateID", err)
	}
	if err := q.Delete(pod("b"), "u", &wire.Message{}); err == nil {
		t.Fatal("Delete with an empty id succeeded")
	}
}

// TestConcurrentProducersConverge runs producers against a simulated edge that applies and
// acks messages; in the end the edge holds exactly the last operation of every key.
func TestConcurrentProducersConverge(t *testing.T) {
	const producers, keysPer, versions = 8, 200, 5
	q := New(Options{MaxKeys: producers * keysPer, AckTimeout: time.Minute})
	defer q.Close()

	type state struct {
		present bool
		rv      string
	}
	var edgeMu sync.Mutex
	edge := map[wire.Key]state{}
	want := make([]map[wire.Key]state, producers)

	var consumers sync.WaitGroup
	for range 2 {
		consumers.Go(func() {
			for {
				it, err := q.Next(context.Background())
				if err != nil {
					return
				}
				edgeMu.Lock()
				edge[it.Key] = state{present: !it.Delete, rv: it.Version.ResourceVersion}
				edgeMu.Unlock()
				q.Ack(it.Msg.Header.ID)
			}
		})
	}
	var prod sync.WaitGroup
	for p := range producers {
		want[p] = map[wire.Key]state{}
		prod.Go(func() {
			for v := range versions {
				for k := range keysPer {
					key := pod(fmt.Sprintf("p%d-k%d", p, k))
					rv := fmt.Sprint(v)
					if (k+v)%4 == 3 {
						if err := q.Delete(key, "u", wire.NewMessage(wire.Route{}, nil)); err != nil {
							t.Errorf("Delete: %v", err)
						}
						want[p][key] = state{}
						continue
					}
					if err := q.Upsert(key, Version{"u", rv}, wire.NewMessage(wire.Route{}, nil)); err != nil {
						t.Errorf("Upsert: %v", err)
					}
					want[p][key] = state{present: true, rv: rv}
				}
				runtime.Gosched()
			}
		})
	}
	prod.Wait()
	eventually(t, "the queue to drain", func() bool {
		s := q.Stats()
		return s.Queued == 0 && s.InFlight == 0
	})
	q.Close()
	consumers.Wait()
	for p := range producers {
		for k, w := range want[p] {
			if got := edge[k]; got != w {
				t.Errorf("%s: edge holds %+v, want %+v", k, got, w)
			}
		}
	}
}

func TestLateAckOfARetryWaitingInLine(t *testing.T) {
	q, clk := newTestQueue(t, 10)
	upsert(t, q, pod("a"), "u", "1", "a1")
	next(t, q)
	upsert(t, q, pod("b"), "u", "1", "b1")
	clk.Step(ackTimeout + initial)
	wantItem(t, next(t, q), pod("b"), "b1", false, 1) // a's retry now waits behind b
	if !q.Ack("a1") {
		t.Fatal("late Ack(a1) = false")
	}
	upsert(t, q, pod("c"), "u", "1", "c1")
	upsert(t, q, pod("a"), "u", "2", "a2")
	wantItem(t, next(t, q), pod("c"), "c1", false, 1)
	wantItem(t, next(t, q), pod("a"), "a2", false, 1)
	wantNothing(t, q)
}

// TestRandomScheduleConverges drives the queue with random upserts, deletes, uid changes,
// lost messages, lost and late acks, nacks and clock steps, against an edge that applies
// what it receives in order. Once everything is acknowledged the edge must hold exactly the
// last operation of every key, and a delete followed by an upsert must never reach the edge as
// the upsert alone.
func TestRandomScheduleConverges(t *testing.T) {
	for seed := range uint64(50) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			q, clk := newTestQueue(t, 1000)
			edge := map[wire.Key]Version{}
			type last struct {
				ver     Version
				deleted bool
			}
			want := map[wire.Key]last{}
			var lateAcks []string
			ids := 0
			index := map[string]int{}
			newID := func() string { ids++; index[fmt.Sprint("m", ids)] = ids; return fmt.Sprint("m", ids) }
			keys := []wire.Key{pod("a"), pod("b"), pod("c"), pod("d")}

			// Order check: given index of every message, given indices of every delete, and
			// per key the last applied upsert and whether a delete was applied since.
			deletesGiven := map[wire.Key][]int{}
			type applied struct {
				upsert     int // given index of the last applied upsert, -1 if none
				deletedYet bool
			}
			seen := map[wire.Key]*applied{}
			deliver := func(it Item, mode int) {
				if mode == 0 { // lost on the way
					return
				}
				a := seen[it.Key]
				if a == nil {
					a = &applied{upsert: -1}
					seen[it.Key] = a
				}
				if it.Delete {
					delete(edge, it.Key)
					a.deletedYet = true
				} else {
					i := index[it.Msg.Header.ID]
					for _, d := range deletesGiven[it.Key] {
						if a.upsert >= 0 && a.upsert < d && d < i && !a.deletedYet {
							t.Fatalf("%s: upsert %s reached the edge without the delete given before it", it.Key, it.Msg.Header.ID)
						}
					}
					a.upsert, a.deletedYet = i, false
					edge[it.Key] = it.Version
				}
				switch mode {
				case 1:
					q.Ack(it.Msg.Header.ID)
				case 2:
					lateAcks = append(lateAcks, it.Msg.Header.ID)
				case 3:
					q.Nack(it.Msg.Header.ID)
				} // 4: ack lost
			}
			for range 400 {
				k := keys[r.IntN(len(keys))]
				switch r.IntN(6) {
				case 0, 1:
					v := Version{UID: fmt.Sprint("uid", r.IntN(3)), ResourceVersion: fmt.Sprint(r.IntN(100))}
					upsert(t, q, k, v.UID, v.ResourceVersion, newID())
					want[k] = last{ver: v}
				case 2:
					uid := fmt.Sprint("uid", r.IntN(3))
					del(t, q, k, uid, newID())
					deletesGiven[k] = append(deletesGiven[k], ids)
					want[k] = last{deleted: true}
				case 3:
					if it, ok := tryNext(q); ok {
						deliver(it, r.IntN(5))
					}
				case 4:
					if len(lateAcks) > 0 {
						i := r.IntN(len(lateAcks))
						q.Ack(lateAcks[i])
						lateAcks = append(lateAcks[:i], lateAcks[i+1:]...)
					}
				case 5:
					clk.Step(time.Duration(r.IntN(20)) * time.Second)
				}
			}
			// Drain with a reliable edge.
			for _, id := range lateAcks {
				q.Ack(id)
			}
			for i := 0; ; i++ {
				if s := q.Stats(); s.Queued == 0 && s.InFlight == 0 {
					break
				}
				if i > 1000 {
					t.Fatalf("queue does not drain: %+v", q.Stats())
				}
				if it, ok := tryNext(q); ok {
					deliver(it, 1)
				} else {
					clk.Step(maxBackoff)
				}
			}
			for k, w := range want {
				got, ok := edge[k]
				if w.deleted && ok || !w.deleted && got != w.ver {
					t.Errorf("%s: edge holds %+v (present %v), want %+v", k, got, ok, w)
				}
			}
		})
	}
}
