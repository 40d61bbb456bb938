package store

import (
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors. Every error the package returns for these conditions wraps one of them, so
// callers decide with errors.Is instead of matching SQLite's text.
var (
	// ErrCorrupt: the database file failed its integrity check or SQLite reported corruption.
	// The edge must not keep running on a store it cannot trust; the operator restores or
	// removes the file (the cloud then resends the node's set).
	ErrCorrupt = errors.New("store: database is corrupt")
	// ErrDiskFull: SQLite could not grow the database or its WAL (SQLITE_FULL). The write
	// did not happen; it may succeed once space is freed.
	ErrDiskFull = errors.New("store: disk full")
	// ErrNewerSchema: the file was written by a newer edgecore. Opening it with an older
	// binary could misread or damage it, so Open refuses.
	ErrNewerSchema = errors.New("store: database schema is newer than this binary")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrCompacted: a watch asked for changes the change log no longer holds (it keeps the
	// newest Options.ChangeLog), or for a revision newer than the store's (the database was
	// replaced). Either way the watcher must list again and watch from the list's revision;
	// the Kubernetes-style API answers 410 Gone.
	ErrCompacted = errors.New("store: revision compacted")
	// ErrWatcherTooSlow: a watcher left more than Options.WatchBuffer events undelivered and
	// was ended so that writers never wait for it. It must list again.
	ErrWatcherTooSlow = errors.New("store: watcher too slow")
)

// mapErr wraps SQLite conditions callers must act on in the package's sentinels and leaves
// every other error as it is. It keeps the original error in the chain for the message.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	// database/sql does not export its "database is closed" error; the text is stable.
	if errors.Is(err, sql.ErrConnDone) || err.Error() == "sql: database is closed" {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	// The low byte of an extended result code is the primary code.
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL:
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}
