package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skerry-io/skerry/pkg/wire"
)

// Class says how the outbox treats a newer message for a key that is still pending.
type Class uint8

const (
	// FIFO entries (events, uploads) are kept in order and never merged: each one is a
	// separate fact the cloud must see.
	FIFO Class = 0
	// Coalesced entries (statuses) carry the latest state of their key: a newer one
	// replaces a pending older one, because sending an outdated status is wasted work.
	Coalesced Class = 1
)

func (c Class) String() string {
	switch c {
	case FIFO:
		return "fifo"
	case Coalesced:
		return "coalesced"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// ErrOutboxFull: a FIFO entry was refused because the outbox is at its limit and holds no
// older FIFO entry to make room, or an entry is larger than the whole byte budget.
var ErrOutboxFull = errors.New("store: outbox full")

// OutboxLimits bound the outbox. The zero value means the defaults.
type OutboxLimits struct {
	// MaxEntries is the most entries kept (≤ 0: DefaultOutboxMax).
	MaxEntries int64
	// MaxBytes is the most encoded message bytes kept (≤ 0: DefaultOutboxBytes).
	MaxBytes int64
}

func (l OutboxLimits) withDefaults() OutboxLimits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultOutboxMax
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultOutboxBytes
	}
	return l
}

// Entry is one pending upstream message.
type Entry struct {
	// ID names this version of the entry; pass it to [Outbox.Ack]. A coalesced entry gets a
	// new ID each time it is replaced, so acking an old version leaves the new one queued.
	// IDs are never reused.
	ID int64
	// Seq is the entry's send position (see [Outbox.NextAfter]).
	Seq      int64
	Key      string // canonical edge resource, e.g. "default/podstatus/web-1"
	Class    Class
	Message  *wire.Message
	Enqueued time.Time // when this version was enqueued
}

// OutboxStats are the outbox's counters since Open, plus its current size. Prometheus
// metrics will read them later.
type OutboxStats struct {
	Entries int64 // entries now queued
	Bytes   int64 // encoded bytes now queued

	Enqueued    uint64 // new entries accepted
	Coalesced   uint64 // pending coalesced entries replaced by a newer version
	Acked       uint64 // entries removed by an ack
	StaleAcks   uint64 // acks that matched nothing (already acked, replaced or dropped)
	Dropped     uint64 // FIFO entries evicted to make room
	Rejected    uint64 // entries refused with ErrOutboxFull
	OverLimit   uint64 // coalesced entries accepted beyond the limits (never dropped)
	Undecodable uint64 // stored rows that failed to decode and were removed
}

// Outbox is the durable queue of messages the edge sends to the cloud (principle 3). An
// entry stays until the cloud acknowledges it, across restarts and power loss; the sender
// sees it again after a restart if its ack did not arrive (at-least-once delivery; the cloud
// de-duplicates by message id).
//
// Order and coalescing: entries are sent by Seq, the position of the key's first pending
// version. A coalesced entry replaced by a newer version keeps its position and gets a new ID.
// This is what makes a busy key fair: it holds at most one slot, it is sent at its turn with
// the newest content (moving it to the back on every update would starve a key updated
// faster than the queue drains), and once acked its next update queues behind everyone else.
//
// Overflow: when a new entry would exceed MaxEntries or MaxBytes, the oldest FIFO entries
// are dropped until it fits, because the newest events describe the present and events are
// best-effort in Kubernetes anyway. Coalesced entries are never dropped: they are the node's
// current state, and their number is bounded by the objects the node holds. Replacing a
// pending coalesced entry takes no new slot and is always accepted. So a new
// coalesced key is accepted even beyond the limits (counted in OverLimit); a new FIFO entry
// that finds no older FIFO entry to drop is refused with [ErrOutboxFull]. Every drop and
// refusal is logged with its key and counted.
type Outbox struct {
	db     *DB
	limits OutboxLimits
	log    *slog.Logger

	// mu serialises the outbox's writes, so entries and bytes stay exact without counting
	// rows in every transaction. Writes are serialised by the single writer connection
	// anyway; this only makes the in-memory totals follow the commits.
	mu      sync.Mutex
	entries atomic.Int64
	bytes   atomic.Int64

	enqueued, coalesced, acked, staleAcks, dropped, rejected, overLimit, undecodable atomic.Uint64
}

func newOutbox(ctx context.Context, db *DB, limits OutboxLimits) (*Outbox, error) {
	o := &Outbox{db: db, limits: limits.withDefaults(), log: db.log}
	var n, b int64
	err := db.read.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox`).Scan(&n, &b)
	if err != nil {
		return nil, fmt.Errorf("store: outbox: %w", mapErr(err))
	}
	o.entries.Store(n)
	o.bytes.Store(b)
	return o, nil
}

// Limits returns the limits in force.
func (o *Outbox) Limits() OutboxLimits { return o.limits }

// Stats returns a snapshot of the counters.
func (o *Outbox) Stats() OutboxStats {
	return OutboxStats{
		Entries:     o.entries.Load(),
		Bytes:       o.bytes.Load(),
		Enqueued:    o.enqueued.Load(),
		Coalesced:   o.coalesced.Load(),
		Acked:       o.acked.Load(),
		StaleAcks:   o.staleAcks.Load(),
		Dropped:     o.dropped.Load(),
		Rejected:    o.rejected.Load(),
		OverLimit:   o.overLimit.Load(),
		Undecodable: o.undecodable.Load(),
	}
}

type victim struct {
	id   int64
	key  string
	size int64
}

// Enqueue stores msg durably and returns the new entry's ID. The key is the message's
// route.resource (edge form, e.g. "default/podstatus/web-1"); it must parse. When Enqueue
// returns nil the message survives a crash or power cut.
func (o *Outbox) Enqueue(ctx context.Context, msg *wire.Message, class Class) (int64, error) {
	if err := o.db.usable(); err != nil {
		return 0, err
	}
	if class != FIFO && class != Coalesced {
		return 0, fmt.Errorf("store: outbox: unknown class %v", class)
	}
	k, err := wire.ParseResource(msg.Route.Resource)
	if err != nil {
		return 0, fmt.Errorf("store: outbox: %w", err)
	}
	key := k.String()
	data, err := wire.Encode(msg)
	if err != nil {
		return 0, fmt.Errorf("store: outbox: %w", err)
	}
	size := int64(len(data))
	if size > o.limits.MaxBytes {
		o.rejected.Add(1)
		o.log.Warn("store: outbox refused entry larger than its byte limit",
			"key", key, "class", class, "msgID", msg.Header.ID, "size", size, "maxBytes", o.limits.MaxBytes)
		return 0, fmt.Errorf("%w: %s: %d bytes exceed the limit of %d", ErrOutboxFull, key, size, o.limits.MaxBytes)
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	tx, err := o.db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: outbox: %w", mapErr(err))
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	now := time.Now().UnixMilli()

	if class == Coalesced {
		var oldID, seq, oldSize int64
		err := tx.QueryRowContext(ctx, `SELECT id, seq, size FROM outbox WHERE key = ? AND class = 1`, key).
			Scan(&oldID, &seq, &oldSize)
		switch {
		case err == nil:
			id, err := o.replace(ctx, tx, oldID, seq, key, msg.Header.ID, data, now)
			if err != nil {
				return 0, fmt.Errorf("store: outbox: %w", mapErr(err))
			}
			o.bytes.Add(size - oldSize)
			o.coalesced.Add(1)
			return id, nil
		case !errors.Is(err, sql.ErrNoRows):
			return 0, fmt.Errorf("store: outbox: %w", mapErr(err))
		}
	}

	// A new entry: make room by dropping the oldest FIFO entries.
	entries, bytes := o.entries.Load(), o.bytes.Load()
	fits := func() bool { return entries+1 <= o.limits.MaxEntries && bytes+size <= o.limits.MaxBytes }
	var drops []victim
	for !fits() {
		vs, err := oldestFIFO(ctx, tx, 64)
		if err != nil {
			return 0, fmt.Errorf("store: outbox: %w", mapErr(err))
		}
		if len(vs) == 0 {
			break
		}
		for _, v := range vs {
			if fits() {
				break
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ?`, v.id); err != nil {
				return 0, fmt.Errorf("store: outbox: %w", mapErr(err))
			}
			entries--
			bytes -= v.size
			drops = append(drops, v)
		}
	}
	over := !fits()
	if over && class == FIFO {
		// The rollback undoes any drops made above: refusing must not also lose entries.
		o.rejected.Add(1)
		o.log.Warn("store: outbox full of latest-state entries, refused FIFO entry",
			"key", key, "msgID", msg.Header.ID, "entries", entries, "bytes", bytes)
		return 0, fmt.Errorf("%w: %s: no older FIFO entry to drop", ErrOutboxFull, key)
	}

	var id int64
	err = tx.QueryRowContext(ctx,
		`INSERT INTO outbox (seq, key, class, msg_id, msg, size, enqueued_at) VALUES (0, ?, ?, ?, ?, ?, ?) RETURNING id`,
		key, class, msg.Header.ID, data, size, now).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: outbox: %w", mapErr(err))
	}
	// The first version's id is the send position: ids only grow, so new entries queue last.
	if _, err := tx.ExecContext(ctx, `UPDATE outbox SET seq = id WHERE id = ?`, id); err != nil {
		return 0, fmt.Errorf("store: outbox: %w", mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: outbox: %w", mapErr(err))
	}

	o.entries.Store(entries + 1)
	o.bytes.Store(bytes + size)
	o.enqueued.Add(1)
	for _, v := range drops {
		o.dropped.Add(1)
		o.log.Warn("store: outbox full, dropped oldest FIFO entry", "key", v.key, "id", v.id, "size", v.size, "for", key)
	}
	if over {
		o.overLimit.Add(1)
		o.log.Warn("store: outbox over its limit with latest-state entries, kept coalesced entry",
			"key", key, "entries", entries+1, "bytes", bytes+size)
	}
	return id, nil
}

// replace swaps a pending coalesced entry for a newer version at the same position.
func (o *Outbox) replace(ctx context.Context, tx *sql.Tx, oldID, seq int64, key, msgID string, data []byte, now int64) (int64, error) {
	// Delete first: the partial unique index allows one coalesced row per key.
	if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE id = ?`, oldID); err != nil {
		return 0, err
	}
	var id int64
	err := tx.QueryRowContext(ctx,
		`INSERT INTO outbox (seq, key, class, msg_id, msg, size, enqueued_at) VALUES (?, ?, 1, ?, ?, ?, ?) RETURNING id`,
		seq, key, msgID, data, len(data), now).Scan(&id)
	if err != nil {
		return 0, err
	}
	return id, tx.Commit()
}

func oldestFIFO(ctx context.Context, tx *sql.Tx, n int) ([]victim, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, key, size FROM outbox WHERE class = 0 ORDER BY seq LIMIT ?`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var vs []victim
	for rows.Next() {
		var v victim
		if err := rows.Scan(&v.id, &v.key, &v.size); err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, rows.Err()
}

// Next returns up to n of the oldest entries in send order without removing them.
func (o *Outbox) Next(ctx context.Context, n int) ([]Entry, error) {
	return o.NextAfter(ctx, 0, n)
}

// NextAfter returns up to n entries with Seq > after, in send order, without removing them.
// A sender that pipelines passes the last Seq it handed out. A coalesced entry replaced
// while in flight keeps its Seq, so it sits behind such a cursor: the sender must start again
// from 0 (Next) whenever its in-flight window drains, which also re-sends, after a reconnect,
// whatever was not acknowledged.
//
// Rows that cannot be decoded (a damaged or foreign file) are removed, logged and counted
// in Undecodable rather than blocking the queue for ever.
func (o *Outbox) NextAfter(ctx context.Context, after int64, n int) ([]Entry, error) {
	if err := o.db.usable(); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	for {
		out, bad, err := o.scan(ctx, after, n)
		if err != nil || len(bad) == 0 {
			return out, err
		}
		if err := o.quarantine(ctx, bad); err != nil {
			return nil, err
		}
		// The removed rows made room in the page: read it again.
	}
}

type badRow struct {
	id   int64
	key  string
	size int64
	err  error
}

func (o *Outbox) scan(ctx context.Context, after int64, n int) ([]Entry, []badRow, error) {
	rows, err := o.db.read.QueryContext(ctx,
		`SELECT id, seq, key, class, msg, size, enqueued_at FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?`, after, n)
	if err != nil {
		return nil, nil, fmt.Errorf("store: outbox: %w", mapErr(err))
	}
	defer rows.Close()
	var out []Entry
	var bad []badRow
	for rows.Next() {
		var (
			id, seq, size, at int64
			class             int64
			key               string
			data              []byte
		)
		if err := rows.Scan(&id, &seq, &key, &class, &data, &size, &at); err != nil {
			return nil, nil, fmt.Errorf("store: outbox: %w", mapErr(err))
		}
		e, err := decodeEntry(id, seq, key, class, data, at)
		if err != nil {
			bad = append(bad, badRow{id: id, key: key, size: size, err: err})
			continue
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("store: outbox: %w", mapErr(err))
	}
	return out, bad, nil
}

// decodeEntry turns a stored row into an Entry. The row comes from a file on disk, which
// may be damaged or edited, so everything is checked and nothing may panic.
func decodeEntry(id, seq int64, key string, class int64, data []byte, enqueuedMilli int64) (Entry, error) {
	if class != int64(FIFO) && class != int64(Coalesced) {
		return Entry{}, fmt.Errorf("unknown class %d", class)
	}
	msg, err := wire.Decode(data, wire.Limits{})
	if err != nil {
		return Entry{}, err
	}
	k, err := wire.ParseResource(msg.Route.Resource)
	if err != nil {
		return Entry{}, err
	}
	if k.String() != key {
		return Entry{}, fmt.Errorf("message resource %q does not match key %q", msg.Route.Resource, key)
	}
	return Entry{
		ID:       id,
		Seq:      seq,
		Key:      key,
		Class:    Class(class),
		Message:  msg,
		Enqueued: time.UnixMilli(enqueuedMilli),
	}, nil
}

func (o *Outbox) quarantine(ctx context.Context, bad []badRow) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, b := range bad {
		var size int64
		err := o.db.write.QueryRowContext(ctx, `DELETE FROM outbox WHERE id = ? RETURNING size`, b.id).Scan(&size)
		if errors.Is(err, sql.ErrNoRows) {
			continue // already gone (acked or removed by a concurrent Next)
		}
		if err != nil {
			return fmt.Errorf("store: outbox: %w", mapErr(err))
		}
		o.entries.Add(-1)
		o.bytes.Add(-size)
		o.undecodable.Add(1)
		o.log.Error("store: outbox removed undecodable entry", "key", b.key, "id", b.id, "err", b.err)
	}
	return nil
}

// Ack removes the entry version id, once the cloud has acknowledged it. It reports whether
// an entry was removed: false means the version was already acked, dropped, or replaced by
// a newer one, which stays queued.
func (o *Outbox) Ack(ctx context.Context, id int64) (bool, error) {
	return o.ack(ctx, `DELETE FROM outbox WHERE id = ? RETURNING size`, id)
}

// AckMessage is [Outbox.Ack] by message id, for acks that name the message they answer
// (parent_msg_id). A coalesced entry's newer version has a new message id, so it stays.
func (o *Outbox) AckMessage(ctx context.Context, msgID string) (bool, error) {
	return o.ack(ctx, `DELETE FROM outbox WHERE msg_id = ? RETURNING size`, msgID)
}

func (o *Outbox) ack(ctx context.Context, query string, arg any) (bool, error) {
	if err := o.db.usable(); err != nil {
		return false, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	rows, err := o.db.write.QueryContext(ctx, query, arg)
	if err != nil {
		return false, fmt.Errorf("store: outbox: %w", mapErr(err))
	}
	defer rows.Close()
	var n, bytes int64
	for rows.Next() {
		var size int64
		if err := rows.Scan(&size); err != nil {
			return false, fmt.Errorf("store: outbox: %w", mapErr(err))
		}
		n++
		bytes += size
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("store: outbox: %w", mapErr(err))
	}
	if err := rows.Close(); err != nil {
		return false, fmt.Errorf("store: outbox: %w", mapErr(err))
	}
	if n == 0 {
		o.staleAcks.Add(1)
		return false, nil
	}
	o.entries.Add(-n)
	o.bytes.Add(-bytes)
	o.acked.Add(uint64(n))
	return true, nil
}

// AckAll removes several entry versions in one transaction, so a sender acknowledging a
// window of messages pays for one fsync instead of one per message. Unknown ids are stale
// acks, as in [Outbox.Ack]. It returns how many entries were removed.
func (o *Outbox) AckAll(ctx context.Context, ids []int64) (int, error) {
	if err := o.db.usable(); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	tx, err := o.db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("store: outbox: %w", mapErr(err))
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var n, bytes int64
	for _, id := range ids {
		var size int64
		err := tx.QueryRowContext(ctx, `DELETE FROM outbox WHERE id = ? RETURNING size`, id).Scan(&size)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("store: outbox: %w", mapErr(err))
		}
		n++
		bytes += size
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("store: outbox: %w", mapErr(err))
	}
	o.entries.Add(-n)
	o.bytes.Add(-bytes)
	o.acked.Add(uint64(n))
	o.staleAcks.Add(uint64(int64(len(ids)) - n))
	return int(n), nil
}
