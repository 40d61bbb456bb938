package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	"github.com/skerry-io/skerry/pkg/wire"
)

// A migration moves the schema from version-1 to version. Migrations are append-only: a
// released one is never edited, because databases in the field already ran it.
type migration struct {
	version int
	name    string
	stmts   []string
	// fn, if set, runs after stmts in the same transaction, for data moves SQL cannot
	// express (e.g. parsing keys).
	fn func(ctx context.Context, tx *sql.Tx, log *slog.Logger) error
}

// schema returns the store's migrations in order. A function rather than a package variable,
// so no code can change the list at run time.
func schema() []migration {
	return []migration{
		{
			version: 1,
			name:    "outbox",
			stmts: []string{
				// id names one version of an entry and is what Ack takes. AUTOINCREMENT
				// guarantees an id is never reused, even after the newest row is acked
				// and the process restarts, so a late or duplicated ack cannot hit a
				// later entry. seq is the send position: the first version's id, kept
				// when a coalesced entry is replaced.
				`CREATE TABLE outbox (
					id          INTEGER PRIMARY KEY AUTOINCREMENT,
					seq         INTEGER NOT NULL,
					key         TEXT    NOT NULL,
					class       INTEGER NOT NULL CHECK (class IN (0, 1)),
					msg_id      TEXT    NOT NULL,
					msg         BLOB    NOT NULL,
					size        INTEGER NOT NULL,
					enqueued_at INTEGER NOT NULL
				)`,
				`CREATE UNIQUE INDEX outbox_seq ON outbox(seq)`,
				// At most one pending coalesced entry per key.
				`CREATE UNIQUE INDEX outbox_coalesced_key ON outbox(key) WHERE class = 1`,
				// Overflow eviction scans FIFO entries oldest first.
				`CREATE INDEX outbox_fifo ON outbox(seq) WHERE class = 0`,
				`CREATE INDEX outbox_msg_id ON outbox(msg_id)`,
			},
		},
		{
			version: 2,
			name:    "objects",
			stmts: []string{
				// One row per object the cloud sent (objects.go). key is the edge-form
				// resource string ("default/pod/web-1"); uid and resource_version are what
				// the inventory reports; content is the message content as received.
				`CREATE TABLE objects (
					key              TEXT PRIMARY KEY NOT NULL,
					uid              TEXT NOT NULL,
					resource_version TEXT NOT NULL,
					content          BLOB NOT NULL
				) WITHOUT ROWID`,
			},
		},
		{
			version: 3,
			name:    "revisions and change log",
			stmts: []string{
				`ALTER TABLE objects RENAME TO objects_v2`,
				// type and namespace are the key's segments (namespace "" for
				// cluster-scoped objects), so List reads one type, optionally in one
				// namespace, through objects_type_namespace instead of scanning the table.
				// revision is the store revision of the object's last change.
				`CREATE TABLE objects (
					key              TEXT PRIMARY KEY NOT NULL,
					type             TEXT NOT NULL,
					namespace        TEXT NOT NULL,
					uid              TEXT NOT NULL,
					resource_version TEXT NOT NULL,
					content          BLOB NOT NULL,
					revision         INTEGER NOT NULL
				) WITHOUT ROWID`,
				`CREATE INDEX objects_type_namespace ON objects(type, namespace)`,
				// The one-row revision counter. current is the newest revision handed
				// out; it only grows, so a revision is never reused, even across
				// restarts. Every revision in (compacted, current] has a row in changes;
				// a watch from below compacted is refused (ErrCompacted).
				`CREATE TABLE revision (
					id        INTEGER PRIMARY KEY CHECK (id = 0),
					current   INTEGER NOT NULL,
					compacted INTEGER NOT NULL CHECK (compacted <= current)
				)`,
				// The change log Watch replays, written in the same transaction as the
				// object change. content is the object after the change; for DELETED the
				// last stored content.
				`CREATE TABLE changes (
					revision         INTEGER PRIMARY KEY,
					type             TEXT NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
					key              TEXT NOT NULL,
					uid              TEXT NOT NULL,
					resource_version TEXT NOT NULL,
					content          BLOB NOT NULL
				)`,
			},
			fn: migrateRevisions,
		},
		{
			version: 4,
			name:    "local objects",
			stmts: []string{
				// local marks an object the edge made itself (a static pod): the inventory
				// leaves it out and cloud messages never replace or delete it (objects.go).
				`ALTER TABLE objects ADD COLUMN local INTEGER NOT NULL DEFAULT 0`,
			},
		},
		{
			version: 5,
			name:    "device twins",
			stmts: []string{
				// One row per device the twin engine knows (twins.go). device is the
				// edge-form key ("default/device/thermo-1"); uid tells a re-created
				// device from the old one. dirty is 0 when the device's status was
				// enqueued upstream after its last change, else the generation of the
				// newest change not yet enqueued, so a restart knows what to send.
				`CREATE TABLE twin_devices (
					device      TEXT PRIMARY KEY NOT NULL,
					uid         TEXT NOT NULL,
					state       TEXT NOT NULL,
					last_online TEXT NOT NULL,
					dirty       INTEGER NOT NULL DEFAULT 0
				) WITHOUT ROWID`,
				// One row per device property. Values are JSON {"value","metadata"} or
				// NULL when unset; cloud_desired is the Device's desired value last seen,
				// so a resend of an unchanged Device does not override an edge-set
				// expected value.
				`CREATE TABLE twins (
					device                 TEXT NOT NULL REFERENCES twin_devices(device) ON DELETE CASCADE,
					property               TEXT NOT NULL,
					type                   TEXT NOT NULL,
					optional               INTEGER NOT NULL DEFAULT 0,
					expected               BLOB,
					actual                 BLOB,
					observed_desired       BLOB,
					cloud_desired          BLOB,
					expected_version_cloud INTEGER NOT NULL DEFAULT 0,
					expected_version_edge  INTEGER NOT NULL DEFAULT 0,
					actual_version_cloud   INTEGER NOT NULL DEFAULT 0,
					actual_version_edge    INTEGER NOT NULL DEFAULT 0,
					PRIMARY KEY (device, property)
				) WITHOUT ROWID`,
			},
		},
	}
}

// revisionsVersion is the schema version that added the revision counter.
const revisionsVersion = 3

// firstRevision is the counter of an empty store. Starting above 0 means no List ever
// returns revision 0, which Watch reads as "from now".
const firstRevision = 1

// migrateRevisions moves the version-2 rows into the new objects table, giving them
// revisions in key order after firstRevision. They were not changes, so the change log
// starts after them: a watch from before the migration is refused and the watcher relists.
// A row whose key does not parse (only a hand-edited file has one) cannot be listed or
// watched; it is dropped and logged, and the next resync restores whatever the cloud
// still wants on the node.
func migrateRevisions(ctx context.Context, tx *sql.Tx, log *slog.Logger) error {
	rows, err := tx.QueryContext(ctx, `SELECT key, uid, resource_version, content FROM objects_v2 ORDER BY key`)
	if err != nil {
		return err
	}
	type row struct {
		key, uid, rv string
		content      []byte
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.key, &r.uid, &r.rv, &r.content); err != nil {
			_ = rows.Close()
			return err
		}
		all = append(all, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	rev := int64(firstRevision)
	for _, r := range all {
		k, err := wire.ParseResource(r.key)
		if err != nil || k.Name == "" {
			log.Warn("store: migration drops an object whose key does not parse", "key", r.key, "err", err)
			continue
		}
		rev++
		if _, err := tx.ExecContext(ctx, `INSERT INTO objects (key, type, namespace, uid, resource_version, content, revision)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, r.key, string(k.Type), k.Namespace, r.uid, r.rv, r.content, rev); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO revision (id, current, compacted) VALUES (0, ?, ?)`, rev, rev); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `DROP TABLE objects_v2`)
	return err
}

// migrate brings the database to the newest version in migrations, one transaction per
// migration, recording the version in PRAGMA user_version inside the same transaction (it
// lives in the file header, which the transaction covers), so a crash leaves the database
// at a whole version.
func migrate(ctx context.Context, db *sql.DB, migrations []migration, log *slog.Logger) error {
	latest := 0
	if n := len(migrations); n > 0 {
		latest = migrations[n-1].version
	}
	var current int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
		return fmt.Errorf("store: reading schema version: %w", mapErr(err))
	}
	if current > latest {
		return fmt.Errorf("%w: file has version %d, this edgecore knows up to %d; run the newer edgecore or restore a backup",
			ErrNewerSchema, current, latest)
	}
	for i, m := range migrations {
		if m.version != i+1 {
			return fmt.Errorf("store: migration %q has version %d, want %d", m.name, m.version, i+1)
		}
		if m.version <= current {
			continue
		}
		if err := apply(ctx, db, m, log); err != nil {
			return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, mapErr(err))
		}
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, m migration, log *slog.Logger) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for _, s := range m.stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	if m.fn != nil {
		if err := m.fn(ctx, tx, log); err != nil {
			return err
		}
	}
	// PRAGMA takes no bound parameters; the version is an int from our own list.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	log.Info("store: migrated schema", "version", m.version, "name", m.name)
	return nil
}
