package store

import (
	"context"
	"database/sql"
	"fmt"
)

// A migration moves the schema from version-1 to version. Migrations are append-only: a
// released one is never edited, because databases in the field already ran it.
type migration struct {
	version int
	name    string
	stmts   []string
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
	}
}

// migrate brings the database to the newest version in migrations, one transaction per
// migration, recording the version in PRAGMA user_version inside the same transaction (it
// lives in the file header, which the transaction covers), so a crash leaves the database
// at a whole version.
func migrate(ctx context.Context, db *sql.DB, migrations []migration) error {
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
		if err := apply(ctx, db, m); err != nil {
			return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, mapErr(err))
		}
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, m migration) error {
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
	// PRAGMA takes no bound parameters; the version is an int from our own list.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return err
	}
	return tx.Commit()
}
