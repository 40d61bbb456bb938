package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/skerry-io/skerry/pkg/wire"
)

// Errors returned by [NodeQueue]. Check them with errors.Is.
var (
	// ErrFull: an upsert of a new key was refused because Options.MaxKeys keys are queued.
	ErrFull = errors.New("queue: full")
	// ErrClosed: the queue was closed.
	ErrClosed = errors.New("queue: closed")
	// ErrDuplicateID: the message id is already tracked; acks could not tell the two apart.
	ErrDuplicateID = errors.New("queue: duplicate message id")
)

// Version identifies one version of an object. ResourceVersion is opaque: two versions are
// the same or they differ, never older or newer.
type Version struct {
	UID             string
	ResourceVersion string
}

// Item is one message to send. Msg is the caller's message, unchanged: the same Msg (and msg
// id) is handed out again on a retry, so a late ack of an earlier attempt still counts. The
// queue and its sender share Msg, so neither may modify it.
type Item struct {
	Key     wire.Key
	Version Version
	Delete  bool
	Msg     *wire.Message
	// Attempt is 1 on the first send of this operation, 2 on its first retry, ...
	Attempt int
}

// Clock is the time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the queue uses.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// Options configure a [NodeQueue]. Zero fields take the defaults named.
type Options struct {
	// MaxKeys bounds the keys with work queued or in flight (default 10000). See the
	// package doc.
	MaxKeys int
	// AckTimeout is how long a sent message may stay unacknowledged before it is retried
	// (default 30 s).
	AckTimeout time.Duration
	// InitialBackoff and MaxBackoff bound the per-key retry delay, which doubles with every
	// failed attempt (defaults 1 s and 30 s).
	InitialBackoff, MaxBackoff time.Duration
	// Jitter returns a number in [0,1); the delay d is shortened to d-d/2*Jitter() so that
	// keys failing together do not retry together. Default math/rand/v2.Float64.
	Jitter func() float64
	// Clock defaults to the real clock.
	Clock Clock
}

// Stats are the queue's counters. Queued and InFlight are gauges, the rest only grow.
type Stats struct {
	Queued   int // keys with an operation waiting to be sent
	InFlight int // messages sent and not yet acknowledged
	// Sent counts messages handed out by Next, retries included.
	Sent uint64
	// Retries counts operations re-queued after an ack timeout or a Nack.
	Retries uint64
	// Acked counts acknowledged messages.
	Acked uint64
	// Superseded counts operations replaced by a newer one before they were acknowledged.
	Superseded uint64
	// Rejected counts upserts refused with ErrFull.
	Rejected uint64
}

// op is one pending operation.
type op struct {
	ver      Version
	del      bool
	msg      *wire.Message
	attempts int // times handed out by Next
}

// entry is the state of one key. It exists while the key has pending or in-flight work.
type entry struct {
	key wire.Key
	// pending is nothing, [upsert], [delete] or [delete, upsert].
	pending  [2]op
	npending int
	inflight op
	sending  bool // inflight is valid
	failures int  // consecutive failures of this key, for the backoff
	// notBefore is the end of the key's backoff.
	notBefore time.Time
	inReady   bool // listed in NodeQueue.ready
	// timerAt is when the entry's one timer fires: the in-flight operation's ack timeout
	// while sending, else the end of the backoff. heapIdx is its place in NodeQueue.timers,
	// -1 when no timer is armed.
	timerAt time.Time
	heapIdx int
	removed bool
}

// NodeQueue is one node's downstream queue. It is safe for concurrent use.
type NodeQueue struct {
	opt Options

	mu      sync.Mutex
	entries map[wire.Key]*entry
	ids     map[string]*entry // msg id -> entry, for every pending and in-flight message
	ready   []*entry          // FIFO of keys whose head operation may be sent now
	readyAt int               // index of the FIFO's head in ready
	timers  timerHeap
	// changed is closed (and replaced) when something a blocked Next waits for happens; it
	// is only replaced when someone waits, so the hot path allocates nothing.
	changed chan struct{}
	waiters int
	// free holds removed entries for reuse, so that a steady stream of updates does not
	// allocate.
	free   []*entry
	closed bool
	stats  Stats
}

// New returns an empty queue.
func New(opt Options) *NodeQueue {
	if opt.MaxKeys <= 0 {
		opt.MaxKeys = 10000
	}
	if opt.AckTimeout <= 0 {
		opt.AckTimeout = 30 * time.Second
	}
	if opt.InitialBackoff <= 0 {
		opt.InitialBackoff = time.Second
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 30 * time.Second
	}
	if opt.MaxBackoff < opt.InitialBackoff {
		opt.MaxBackoff = opt.InitialBackoff
	}
	if opt.Jitter == nil {
		opt.Jitter = rand.Float64
	}
	if opt.Clock == nil {
		opt.Clock = realClock{}
	}
	return &NodeQueue{
		opt:     opt,
		entries: make(map[wire.Key]*entry),
		ids:     make(map[string]*entry),
		changed: make(chan struct{}),
	}
}

// Upsert queues msg, which creates or updates the object key at version v. It replaces any
// upsert of key not yet sent. It fails with ErrFull only for a key not queued yet.
func (q *NodeQueue) Upsert(key wire.Key, v Version, msg *wire.Message) error {
	return q.put(key, op{ver: v, msg: msg})
}

// Delete queues msg, which deletes the object key whose uid is uid. It is always accepted
// (see the package doc) unless the queue is closed or msg is invalid.
func (q *NodeQueue) Delete(key wire.Key, uid string, msg *wire.Message) error {
	return q.put(key, op{ver: Version{UID: uid}, del: true, msg: msg})
}

func (q *NodeQueue) put(key wire.Key, o op) error {
	if o.msg == nil || o.msg.Header.ID == "" {
		return fmt.Errorf("queue: %s: message without id", key)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if _, dup := q.ids[o.msg.Header.ID]; dup {
		return fmt.Errorf("%w: %s for %s", ErrDuplicateID, o.msg.Header.ID, key)
	}
	e := q.entries[key]
	if e == nil {
		if !o.del && len(q.entries) >= q.opt.MaxKeys {
			q.stats.Rejected++
			return fmt.Errorf("%w: %d keys queued, upsert of %s refused", ErrFull, len(q.entries), key)
		}
		e = q.newEntry(key)
		q.entries[key] = e
	}
	q.ids[o.msg.Header.ID] = e
	q.appendOp(e, o)
	q.makeReadyIfSendable(e, q.nowIfBackingOff(e))
	return nil
}

// nowIfBackingOff reads the clock only when e's backoff may still run: the zero time is
// never before a zero notBefore, and reading the clock is a large part of an Upsert.
func (q *NodeQueue) nowIfBackingOff(e *entry) time.Time {
	if e.notBefore.IsZero() {
		return time.Time{}
	}
	return q.opt.Clock.Now()
}

func (q *NodeQueue) newEntry(key wire.Key) *entry {
	if n := len(q.free); n > 0 {
		e := q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
		e.key = key
		return e
	}
	return &entry{key: key, heapIdx: -1}
}

// remove forgets e once it has no work left.
func (q *NodeQueue) remove(e *entry) {
	q.disarm(e)
	delete(q.entries, e.key)
	if e.inReady {
		// Still listed in the ready FIFO, which skips it by this flag: not reusable.
		e.removed = true
		return
	}
	if len(q.free) < 1024 {
		*e = entry{heapIdx: -1}
		q.free = append(q.free, e)
	}
}

// appendOp adds o behind e's pending operations, coalescing as the package doc describes.
func (q *NodeQueue) appendOp(e *entry, o op) {
	switch {
	case e.npending == 0:
		e.pending[0], e.npending = o, 1
	case !o.del:
		// A newer upsert replaces a pending upsert and waits behind a pending delete.
		if last := &e.pending[e.npending-1]; !last.del {
			q.supersede(*last)
			*last = o
		} else {
			e.pending[e.npending] = o
			e.npending++
		}
	default:
		// A delete replaces a pending upsert (it never reached the edge) and a pending delete.
		for e.npending > 0 && !e.pending[e.npending-1].del {
			q.supersede(e.pending[e.npending-1])
			e.npending--
		}
		if e.npending > 0 {
			q.supersede(e.pending[0])
		}
		e.pending[0], e.npending = o, 1
	}
}

// supersede forgets an operation replaced by a newer one.
func (q *NodeQueue) supersede(o op) {
	delete(q.ids, o.msg.Header.ID)
	q.stats.Superseded++
}

// makeReadyIfSendable lists e in the ready FIFO when its head operation may be sent now, or
// arms its backoff timer when it may be sent later.
func (q *NodeQueue) makeReadyIfSendable(e *entry, now time.Time) {
	if e.sending || e.npending == 0 || e.inReady {
		return
	}
	if now.Before(e.notBefore) {
		if e.heapIdx < 0 {
			q.arm(e, e.notBefore)
		}
		return
	}
	e.inReady = true
	q.ready = append(q.ready, e)
	q.wake()
}

// arm sets e's one timer to at.
func (q *NodeQueue) arm(e *entry, at time.Time) {
	e.timerAt = at
	if e.heapIdx >= 0 {
		heap.Fix(&q.timers, e.heapIdx)
	} else {
		heap.Push(&q.timers, e)
	}
	q.wake()
}

func (q *NodeQueue) disarm(e *entry) {
	if e.heapIdx >= 0 {
		heap.Remove(&q.timers, e.heapIdx)
	}
}

// wake tells blocked Next calls to look again.
func (q *NodeQueue) wake() {
	if q.waiters > 0 {
		close(q.changed)
		q.changed = make(chan struct{})
		q.waiters = 0
	}
}

// Next blocks until an operation may be sent and returns it, marking it in flight. The caller
// must send Item.Msg and report the answer with Ack or Nack; without one, the operation is
// retried after Options.AckTimeout. Next returns ErrClosed after Close and ctx.Err() when ctx
// ends.
func (q *NodeQueue) Next(ctx context.Context) (Item, error) {
	var timer Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return Item{}, ErrClosed
		}
		now := q.opt.Clock.Now()
		q.fireTimers(now)
		if it, ok := q.popReady(now); ok {
			q.mu.Unlock()
			return it, nil
		}
		changed := q.changed
		q.waiters++
		var wait time.Duration = -1
		if len(q.timers) > 0 {
			wait = max(q.timers[0].timerAt.Sub(now), 0)
		}
		q.mu.Unlock()

		var fire <-chan time.Time
		if wait >= 0 {
			if timer != nil {
				timer.Stop()
			}
			timer = q.opt.Clock.NewTimer(wait)
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
			return Item{}, ctx.Err()
		case <-changed:
		case <-fire:
		}
	}
}

// popReady hands out the first sendable operation of the ready FIFO.
func (q *NodeQueue) popReady(now time.Time) (Item, bool) {
	for q.readyAt < len(q.ready) {
		e := q.ready[q.readyAt]
		q.ready[q.readyAt] = nil
		q.readyAt++
		e.inReady = false
		if e.removed || e.sending || e.npending == 0 {
			continue
		}
		o := e.pending[0]
		e.pending[0], e.pending[1] = e.pending[1], op{}
		e.npending--
		o.attempts++
		e.inflight, e.sending = o, true
		q.arm(e, now.Add(q.opt.AckTimeout))
		q.stats.Sent++
		q.compactReady()
		return Item{Key: e.key, Version: o.ver, Delete: o.del, Msg: o.msg, Attempt: o.attempts}, true
	}
	q.compactReady()
	return Item{}, false
}

// compactReady reuses the FIFO's backing array once the consumed prefix dominates it.
func (q *NodeQueue) compactReady() {
	if q.readyAt == len(q.ready) {
		q.ready, q.readyAt = q.ready[:0], 0
	} else if q.readyAt > 64 && q.readyAt*2 > len(q.ready) {
		n := copy(q.ready, q.ready[q.readyAt:])
		clear(q.ready[n:])
		q.ready, q.readyAt = q.ready[:n], 0
	}
}

// fireTimers handles every timer event due at now: ack timeouts and ends of backoff.
func (q *NodeQueue) fireTimers(now time.Time) {
	for len(q.timers) > 0 && !q.timers[0].timerAt.After(now) {
		e := heap.Pop(&q.timers).(*entry)
		if e.sending {
			// Back off from the moment the ack was due, not from when Next noticed.
			q.fail(e, e.timerAt, now)
		} else {
			q.makeReadyIfSendable(e, now)
		}
	}
}

// fail puts e's in-flight operation, which failed at failedAt, back in front of its pending
// ones and starts the backoff.
func (q *NodeQueue) fail(e *entry, failedAt, now time.Time) {
	o := e.inflight
	e.inflight, e.sending = op{}, false
	q.disarm(e)
	q.stats.Retries++
	q.requeueFront(e, o)
	e.failures++
	e.notBefore = failedAt.Add(q.backoff(e.failures))
	q.makeReadyIfSendable(e, now)
}

// requeueFront puts a failed operation back before the pending ones unless one of them
// supersedes it: any pending operation supersedes an upsert, a pending delete supersedes a
// delete; an upsert alone still has to wait behind the failed delete.
func (q *NodeQueue) requeueFront(e *entry, o op) {
	switch {
	case e.npending == 0:
		e.pending[0], e.npending = o, 1
	case !o.del || e.pending[0].del:
		q.supersede(o)
	default: // o is a delete, pending is [upsert]
		e.pending[1], e.pending[0], e.npending = e.pending[0], o, 2
	}
}

func (q *NodeQueue) backoff(failures int) time.Duration {
	d := q.opt.InitialBackoff
	for i := 1; i < failures && d < q.opt.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, q.opt.MaxBackoff)
	return d - time.Duration(float64(d/2)*q.opt.Jitter())
}

// Ack records that the edge committed the message msgID. If a newer operation of the same key
// is pending it goes next; otherwise the key is done. It reports whether msgID was known: acks
// of superseded or already acknowledged messages are ignored.
func (q *NodeQueue) Ack(msgID string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.ids[msgID]
	if e == nil {
		return false
	}
	delete(q.ids, msgID)
	q.stats.Acked++
	switch {
	case e.sending && e.inflight.msg.Header.ID == msgID:
		e.inflight, e.sending = op{}, false
	case e.npending > 0 && e.pending[0].msg.Header.ID == msgID && e.pending[0].attempts > 0:
		// A late ack of an attempt that timed out and waits for its retry.
		e.pending[0], e.pending[1] = e.pending[1], op{}
		e.npending--
	default:
		// Never sent: an edge cannot ack what it did not receive.
		q.stats.Acked--
		return false
	}
	e.failures, e.notBefore = 0, time.Time{}
	q.disarm(e) // the ack timeout (or backoff) no longer applies
	if e.npending == 0 && !e.sending {
		q.remove(e)
		return true
	}
	q.makeReadyIfSendable(e, time.Time{}) // no backoff after an ack
	return true
}

// Nack records that the edge refused or failed to apply msgID (an `error` answer): the
// operation is retried after the key's backoff. It reports whether msgID was in flight.
func (q *NodeQueue) Nack(msgID string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.ids[msgID]
	if e == nil || !e.sending || e.inflight.msg.Header.ID != msgID {
		return false
	}
	now := q.opt.Clock.Now()
	q.fail(e, now, now)
	return true
}

// Keys returns the keys with pending or in-flight work, in no particular order. A resync
// uses it to settle work queued before the edge reported what it holds.
func (q *NodeQueue) Keys() []wire.Key {
	q.mu.Lock()
	defer q.mu.Unlock()
	keys := make([]wire.Key, 0, len(q.entries))
	for k := range q.entries {
		keys = append(keys, k)
	}
	return keys
}

// Stats returns the counters.
func (q *NodeQueue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stats
	for _, e := range q.entries {
		if e.npending > 0 {
			s.Queued++
		}
		if e.sending {
			s.InFlight++
		}
	}
	return s
}

// Close wakes every blocked Next, which then returns ErrClosed, and refuses further work.
func (q *NodeQueue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		q.wake()
	}
}

// timerHeap orders entries by timerAt. Each entry is in it at most once, so its size is
// bounded by the number of keys.
type timerHeap []*entry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].timerAt.Before(h[j].timerAt) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *timerHeap) Push(x any) {
	e := x.(*entry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old) - 1
	e := old[n]
	old[n] = nil
	e.heapIdx = -1
	*h = old[:n]
	return e
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer {
	return realTimer{time.NewTimer(d)}
}

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }
