// Package store is edgecore's local database: one SQLite file per node that holds what the
// edge knows (architecture principle 3). This first part provides the database itself
// (opening, pragmas, schema migrations, integrity check, error mapping), the durable
// upstream outbox ([Outbox]) and the objects the cloud sent, with store revisions and typed
// change events for watchers ([DB.ApplyMessage], [DB.List], [DB.Watch]). Twin tables come
// with later migrations.
//
// The outbox lives in this package rather than in a sub-package because it shares the one
// migration sequence and the one writer connection with the rest of the store, and because
// later writers (pod status, device twins) must be able to change their rows and enqueue
// the matching upstream message in the same transaction.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// FileName is the database file inside the data directory. SQLite keeps edge.db-wal and
// edge.db-shm next to it; all three belong to the database.
const FileName = "edge.db"

// Defaults for [Options].
const (
	DefaultBusyTimeout  = 5 * time.Second
	DefaultReadConns    = 4
	DefaultOutboxMax    = 10000
	DefaultOutboxBytes  = 64 << 20
	DefaultChangeLog    = 10000
	DefaultWatchBuffer  = 1024
	quickCheckRowsLimit = 10 // problems quick_check reports before we stop reading them
)

// Options configure [Open]. The zero value means the defaults.
type Options struct {
	// Logger receives structured logs (outbox drops, corruption, migrations, watchers
	// ended for falling behind). nil: slog.Default().
	Logger *slog.Logger
	// BusyTimeout bounds how long a connection waits for a lock held by another process
	// (e.g. an operator's sqlite3 shell). Our own writes never wait: there is one writer.
	BusyTimeout time.Duration
	// ReadConns is the size of the read pool (≤ 0: DefaultReadConns).
	ReadConns int
	// Outbox bounds the upstream outbox.
	Outbox OutboxLimits
	// ChangeLog is how many of the newest changes the store keeps for Watch to replay
	// (≤ 0: DefaultChangeLog). A watcher further behind gets ErrCompacted and relists.
	ChangeLog int
	// WatchBuffer is how many live events a watcher may have undelivered before it is ended
	// with ErrWatcherTooSlow (≤ 0: DefaultWatchBuffer). Writers never wait for watchers.
	WatchBuffer int

	// syncNormal switches the writer to synchronous=NORMAL. Only benchmarks set it, to
	// measure what FULL costs; production always uses FULL (see Open).
	syncNormal bool
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = DefaultBusyTimeout
	}
	if o.ReadConns <= 0 {
		o.ReadConns = DefaultReadConns
	}
	o.Outbox = o.Outbox.withDefaults()
	if o.ChangeLog <= 0 {
		o.ChangeLog = DefaultChangeLog
	}
	if o.WatchBuffer <= 0 {
		o.WatchBuffer = DefaultWatchBuffer
	}
	return o
}

// DB is the open store. It is safe for concurrent use.
type DB struct {
	// write is the only connection that writes (MaxOpenConns=1). SQLite admits one writer
	// at a time; funnelling every write through one connection turns lock contention into
	// queueing inside database/sql, so writes never fail with SQLITE_BUSY.
	write *sql.DB
	// read is a pool of query-only connections. In WAL mode readers do not block the
	// writer and see the last committed state.
	read   *sql.DB
	log    *slog.Logger
	path   string
	closed atomic.Bool
	outbox *Outbox

	// applyMu serialises object changes from their transaction to their publication, so
	// watchers receive events in revision order.
	applyMu   sync.Mutex
	changeLog int64 // changes kept for replay (Options.ChangeLog)
	watchers  *broadcaster
}

// Open opens (creating if needed) <dataDir>/edge.db, checks its integrity and brings its
// schema up to date. It fails with [ErrCorrupt] if the file is damaged and with
// [ErrNewerSchema] if a newer edgecore wrote it.
func Open(ctx context.Context, dataDir string, opts Options) (*DB, error) {
	return open(ctx, dataDir, opts, schema())
}

func open(ctx context.Context, dataDir string, opts Options, migrations []migration) (*DB, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: creating data dir: %w", err)
	}
	path := filepath.Join(dataDir, FileName)

	// synchronous=FULL: in WAL mode, NORMAL fsyncs only at checkpoints, so a power cut can
	// lose the last commits even though Enqueue returned. The outbox promises that an
	// accepted message survives power loss, and the downstream path acks the cloud after
	// commit, so every commit must reach the disk before it returns. The price is one fsync
	// per write transaction: on the 2-core dev VM (loaded) an Enqueue took ~0.7-1.3 ms with
	// FULL against ~0.2-0.35 ms with NORMAL (bench_test.go). Callers that need more throughput
	// should batch several writes into one transaction, not weaken this.
	sync := "FULL"
	if opts.syncNormal {
		sync = "NORMAL"
	}
	busy := fmt.Sprint(opts.BusyTimeout.Milliseconds())
	wq := url.Values{}
	wq.Set("_busy_timeout", busy)
	wq.Set("_journal_mode", "WAL")
	wq.Set("_synchronous", sync)
	wq.Set("_foreign_keys", "1")
	// BEGIN IMMEDIATE takes the write lock at the start of a transaction rather than at its
	// first write, so a transaction never fails half-way on a lock upgrade.
	wq.Set("_txlock", "immediate")
	write, err := sql.Open("sqlite", dsn(path, wq))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	db := &DB{write: write, log: opts.Logger, path: path, changeLog: int64(opts.ChangeLog)}
	if err := db.check(ctx); err != nil {
		_ = write.Close()
		return nil, err
	}
	if err := migrate(ctx, write, migrations, opts.Logger); err != nil {
		_ = write.Close()
		return nil, err
	}

	rq := url.Values{}
	rq.Set("_busy_timeout", busy)
	rq.Set("_foreign_keys", "1")
	rq.Set("_query_only", "1")
	read, err := sql.Open("sqlite", dsn(path, rq))
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	read.SetMaxOpenConns(opts.ReadConns)
	read.SetMaxIdleConns(opts.ReadConns)
	db.read = read
	if err := read.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: opening read pool: %w", mapErr(err))
	}

	ob, err := newOutbox(ctx, db, opts.Outbox)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	db.outbox = ob

	var rev int64
	if len(migrations) >= revisionsVersion { // tests open older schemas too
		if err := read.QueryRowContext(ctx, `SELECT current FROM revision`).Scan(&rev); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("store: reading revision: %w", mapErr(err))
		}
	}
	db.watchers = newBroadcaster(rev, opts.WatchBuffer, opts.Logger)
	return db, nil
}

func dsn(path string, q url.Values) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// check runs PRAGMA quick_check: O(N) in the file size, much cheaper than integrity_check
// (it skips index-content cross checks) and enough to catch torn or overwritten pages before
// the edge starts acting on its contents.
func (db *DB) check(ctx context.Context) error {
	rows, err := db.write.QueryContext(ctx, fmt.Sprintf("PRAGMA quick_check(%d)", quickCheckRowsLimit))
	if err != nil {
		return fmt.Errorf("store: opening %s: %w", db.path, mapErr(err))
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("store: quick_check %s: %w", db.path, mapErr(err))
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: quick_check %s: %w", db.path, mapErr(err))
	}
	if len(problems) > 0 {
		db.log.Error("store: database failed quick_check", "path", db.path, "problems", problems)
		return fmt.Errorf("%w: %s: %s", ErrCorrupt, db.path, strings.Join(problems, "; "))
	}
	return nil
}

// Outbox returns the durable upstream outbox.
func (db *DB) Outbox() *Outbox { return db.outbox }

// Close ends every watcher (their Err is [ErrClosed]) and waits for their goroutines, then
// closes every connection; WAL contents are checkpointed into the main file by SQLite when
// the last connection closes. Calls after Close fail with [ErrClosed]. Close is idempotent.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	if db.watchers != nil {
		db.watchers.close()
	}
	var errs []error
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	errs = append(errs, db.write.Close())
	return errors.Join(errs...)
}

func (db *DB) usable() error {
	if db.closed.Load() {
		return ErrClosed
	}
	return nil
}
