package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// EventType says what a change did to an object. The values are Kubernetes' watch event
// types, so the read API can pass them through.
type EventType string

// Event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// Event is one committed change. Object is the object after the change; for Deleted, the
// last stored object, with Revision set to the deletion's.
type Event struct {
	Type     EventType
	Revision int64
	Object   Object
}

// replayPage is how many logged changes a watcher reads per read transaction, so a slow
// consumer never holds a read snapshot (and the WAL) open.
const replayPage = 256

// errStopped is the cancel cause of Watcher.Stop; Err reports it as nil.
var errStopped = errors.New("store: watcher stopped")

// Revision returns the store's current revision: that of the newest change published to
// watchers. It never decreases, also across restarts.
func (db *DB) Revision() int64 { return db.watchers.rev.Load() }

// Watcher delivers the store's changes in revision order. Its goroutine belongs to it: it
// ends when the watch's ctx is cancelled, on Stop, on DB.Close, when the consumer falls
// behind, or on a read error; then Events is closed and Err says why.
type Watcher struct {
	db     *DB
	ctx    context.Context
	cancel context.CancelCauseFunc
	live   chan Event // filled by the broadcaster, never blocking it
	out    chan Event
	done   chan struct{}
	err    error // set before done is closed
}

// Watch delivers every change with a revision above fromRevision: first those still in the
// change log, then live ones, with no gap and no duplicate between the two. fromRevision 0
// means "from now"; a List's revision means "after that snapshot". A fromRevision older
// than the change log, or newer than the store, fails with [ErrCompacted]: list again.
// The watcher ends with [ErrWatcherTooSlow] if Options.WatchBuffer live events wait
// undelivered. Cancel ctx or call Stop to release it.
func (db *DB) Watch(ctx context.Context, fromRevision int64) (*Watcher, error) {
	if err := db.usable(); err != nil {
		return nil, err
	}
	if fromRevision < 0 {
		return nil, fmt.Errorf("store: watch: negative revision %d", fromRevision)
	}
	wctx, cancel := context.WithCancelCause(ctx)
	w := &Watcher{
		db:     db,
		ctx:    wctx,
		cancel: cancel,
		live:   make(chan Event, db.watchers.buffer),
		out:    make(chan Event),
		done:   make(chan struct{}),
	}
	// Subscribe before reading the log: every change up to upTo is committed and in the
	// log, every later one arrives live. Replaying (from, upTo] and skipping live events
	// at or below the last replayed revision leaves no gap and no duplicate.
	upTo, err := db.watchers.subscribe(w)
	if err != nil {
		cancel(err)
		return nil, err
	}
	if fromRevision == 0 {
		fromRevision = upTo
	}
	if err := db.checkWatchFrom(wctx, fromRevision); err != nil {
		if errors.Is(context.Cause(wctx), ErrClosed) {
			err = ErrClosed // Close raced with Watch; say so rather than "context canceled"
		}
		cancel(err)
		db.watchers.release(w)
		return nil, err
	}
	go w.run(fromRevision, upTo)
	return w, nil
}

// checkWatchFrom refuses a start revision whose successors the log does not all hold.
func (db *DB) checkWatchFrom(ctx context.Context, from int64) error {
	var current, compacted int64
	if err := db.read.QueryRowContext(ctx, `SELECT current, compacted FROM revision`).Scan(&current, &compacted); err != nil {
		return fmt.Errorf("store: watch: %w", mapErr(err))
	}
	if from < compacted {
		return fmt.Errorf("%w: revision %d is older than the change log, which starts after %d", ErrCompacted, from, compacted)
	}
	if from > current {
		return fmt.Errorf("%w: revision %d is newer than the store's %d (was the database replaced?)", ErrCompacted, from, current)
	}
	return nil
}

// Events returns the channel of changes. It is closed when the watcher ends; see Err.
func (w *Watcher) Events() <-chan Event { return w.out }

// Err returns why the watcher ended: nil while it runs and after Stop, the ctx's cause if
// the watch's ctx ended it, or an error wrapping ErrClosed, ErrCompacted, ErrWatcherTooSlow,
// or a database error.
func (w *Watcher) Err() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}

// Stop ends the watcher and waits until its goroutine has exited. It is idempotent.
func (w *Watcher) Stop() {
	w.cancel(errStopped)
	<-w.done
}

// run replays the logged changes in (from, upTo], then forwards live events.
func (w *Watcher) run(from, upTo int64) {
	defer func() {
		w.cancel(errStopped) // no-op unless nothing else ended it; frees the context
		if err := context.Cause(w.ctx); !errors.Is(err, errStopped) {
			w.err = err
		}
		// done before out: Err is valid as soon as a reader sees Events closed.
		close(w.done)
		close(w.out)
		w.db.watchers.release(w)
	}()
	last := from
	for last < upTo {
		evs, err := w.db.changesAfter(w.ctx, last, upTo)
		if err != nil {
			w.cancel(err)
			return
		}
		if len(evs) == 0 {
			break // no change row above last: revisions without changes
		}
		for _, ev := range evs {
			if !w.send(ev) {
				return
			}
			last = ev.Revision
		}
	}
	last = max(last, upTo)
	for {
		select {
		case <-w.ctx.Done():
			return
		case ev := <-w.live:
			if ev.Revision <= last {
				continue // replayed already
			}
			if !w.send(ev) {
				return
			}
			last = ev.Revision
		}
	}
}

func (w *Watcher) send(ev Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-w.ctx.Done():
		return false
	}
}

// changesAfter reads up to replayPage logged changes in (after, upTo], in order. It fails
// with ErrCompacted if the log was trimmed past after since the watch began.
func (db *DB) changesAfter(ctx context.Context, after, upTo int64) ([]Event, error) {
	evs, err := db.readChanges(ctx, after, upTo)
	if err != nil {
		return nil, fmt.Errorf("store: watch: %w", mapErr(err))
	}
	return evs, nil
}

func (db *DB) readChanges(ctx context.Context, after, upTo int64) ([]Event, error) {
	tx, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to commit
	var compacted int64
	if err := tx.QueryRowContext(ctx, `SELECT compacted FROM revision`).Scan(&compacted); err != nil {
		return nil, err
	}
	if after < compacted {
		return nil, fmt.Errorf("%w: the change log was trimmed past revision %d while replaying", ErrCompacted, after)
	}
	rows, err := tx.QueryContext(ctx, `SELECT revision, type, key, uid, resource_version, content FROM changes
		WHERE revision > ? AND revision <= ? ORDER BY revision LIMIT ?`, after, upTo, replayPage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var evs []Event
	for rows.Next() {
		var ev Event
		var typ, key string
		var content []byte
		if err := rows.Scan(&ev.Revision, &typ, &key, &ev.Object.UID, &ev.Object.ResourceVersion, &content); err != nil {
			return nil, err
		}
		if ev.Object.Key, err = storedKey(key); err != nil {
			return nil, err
		}
		ev.Type = EventType(typ)
		ev.Object.Content = content
		ev.Object.Revision = ev.Revision
		evs = append(evs, ev)
	}
	return evs, rows.Err()
}

// broadcaster hands committed changes to the live watchers. Publishing never blocks: a
// watcher whose buffer is full is ended instead.
type broadcaster struct {
	log    *slog.Logger
	buffer int
	rev    atomic.Int64 // newest published revision; written under mu

	mu       sync.Mutex
	closed   bool
	watchers map[*Watcher]struct{}
	running  sync.WaitGroup // one per subscribed watcher, until release
}

func newBroadcaster(rev int64, buffer int, log *slog.Logger) *broadcaster {
	b := &broadcaster{log: log, buffer: buffer, watchers: map[*Watcher]struct{}{}}
	b.rev.Store(rev)
	return b
}

// subscribe registers w and returns the newest published revision: w receives every later
// event.
func (b *broadcaster) subscribe(w *Watcher) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, ErrClosed
	}
	b.watchers[w] = struct{}{}
	b.running.Add(1)
	return b.rev.Load(), nil
}

// release unregisters w once its goroutine is done (or never started).
func (b *broadcaster) release(w *Watcher) {
	b.mu.Lock()
	delete(b.watchers, w)
	b.mu.Unlock()
	b.running.Done()
}

func (b *broadcaster) publish(evs []Event) {
	if len(evs) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ev := range evs {
		b.rev.Store(ev.Revision)
		for w := range b.watchers {
			select {
			case w.live <- ev:
			default:
				delete(b.watchers, w) // release comes from w's goroutine
				w.cancel(fmt.Errorf("%w: %d events undelivered at revision %d", ErrWatcherTooSlow, cap(w.live), ev.Revision))
				b.log.Warn("store: ending a watcher that fell behind", "revision", ev.Revision, "buffer", cap(w.live))
			}
		}
	}
}

// close ends every watcher with ErrClosed and waits for their goroutines.
func (b *broadcaster) close() {
	b.mu.Lock()
	b.closed = true
	for w := range b.watchers {
		w.cancel(ErrClosed)
	}
	clear(b.watchers)
	b.mu.Unlock()
	b.running.Wait()
}
