package store

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func quietOptions() Options {
	return Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func openT(t testing.TB, dir string, opts Options) *DB {
	t.Helper()
	db, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func userVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// rawOpen opens the file without the store, as an operator's sqlite3 shell would.
func rawOpen(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestOpenCreatesSchemaAndSetsPragmas(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "data")
	db := openT(t, dir, quietOptions())
	if got, want := userVersion(t, db.write), len(schema()); got != want {
		t.Errorf("user_version = %d, want %d", got, want)
	}
	for _, c := range []struct {
		conn   *sql.DB
		pragma string
		want   string
	}{
		{db.write, "journal_mode", "wal"},
		{db.write, "synchronous", "2"}, // FULL
		{db.write, "foreign_keys", "1"},
		{db.write, "busy_timeout", "5000"},
		{db.read, "query_only", "1"},
		{db.read, "foreign_keys", "1"},
	} {
		var got string
		if err := c.conn.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %q, want %q", c.pragma, got, c.want)
		}
	}
	if got := db.write.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", got)
	}
	if _, err := db.read.Exec("DELETE FROM outbox"); err == nil {
		t.Error("read pool accepted a write")
	}
}

func TestReopenAtSameVersion(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, quietOptions())
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openT(t, dir, quietOptions())
	if got, want := userVersion(t, db.write), len(schema()); got != want {
		t.Errorf("user_version = %d, want %d", got, want)
	}
}

func TestMigratesOlderDatabase(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	v1 := schema()[:1]
	db, err := open(ctx, dir, quietOptions(), v1)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	v2 := append(schema()[:1:1], migration{version: 2, name: "extra", stmts: []string{
		`CREATE TABLE extra (x INTEGER)`,
	}})
	db, err = open(ctx, dir, quietOptions(), v2)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer db.Close()
	if got := userVersion(t, db.write); got != 2 {
		t.Errorf("user_version = %d, want 2", got)
	}
	if _, err := db.write.Exec(`INSERT INTO extra VALUES (1)`); err != nil {
		t.Errorf("migration 2 did not run: %v", err)
	}
}

func TestFailedMigrationLeavesPreviousVersion(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	bad := append(schema()[:1:1], migration{version: 2, name: "broken", stmts: []string{
		`CREATE TABLE half (x INTEGER)`,
		`THIS IS NOT SQL`,
	}})
	if _, err := open(ctx, dir, quietOptions(), bad); err == nil {
		t.Fatal("open with a broken migration succeeded")
	}
	raw := rawOpen(t, dir)
	if got := userVersion(t, raw); got != 1 {
		t.Errorf("user_version = %d, want 1 (migration 2 must roll back whole)", got)
	}
	var n int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("table from the failed migration exists")
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, quietOptions())
	_ = db.Close()
	raw := rawOpen(t, dir)
	if _, err := raw.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	_ = raw.Close()

	_, err := Open(context.Background(), dir, quietOptions())
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open = %v, want ErrNewerSchema", err)
	}
	t.Log(err)
}

func TestCorruptFileIsErrCorrupt(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, quietOptions())
	ob := db.Outbox()
	// Enough rows for the table to span many pages.
	for i := range 300 {
		if _, err := ob.Enqueue(context.Background(), testMsg("default/event/e", `{"n":`+strconv.Itoa(i)+`,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`), FIFO); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Fatal("WAL still present after Close: the corruption would hit a stale page")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, 3*4096)
	for i := range garbage {
		garbage[i] = byte(i*7 + 13)
	}
	if _, err := f.WriteAt(garbage, fi.Size()/2/4096*4096); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	_, err = Open(context.Background(), dir, quietOptions())
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of damaged file = %v, want ErrCorrupt", err)
	}
	t.Log(err)
}

func TestNotADatabaseIsErrCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("this is not an sqlite file, not at all, definitely not"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir, quietOptions())
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}

func TestDiskFullIsErrDiskFull(t *testing.T) {
	db := openT(t, t.TempDir(), quietOptions())
	ctx := context.Background()
	// max_page_count makes SQLite report SQLITE_FULL exactly as a full disk would.
	var pages int
	if err := db.write.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.Exec("PRAGMA max_page_count = " + strconv.Itoa(pages+1)); err != nil {
		t.Fatal(err)
	}
	ob := db.Outbox()
	big := `"` + strings.Repeat("a", 3000) + `"`
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = ob.Enqueue(ctx, testMsg("default/event/e", big), FIFO)
	}
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Enqueue on a full database = %v, want ErrDiskFull", err)
	}
	// The failed write left the totals alone and the store usable.
	n := countRows(t, db)
	if st := ob.Stats(); st.Entries != int64(n) {
		t.Errorf("Stats.Entries = %d, rows = %d", st.Entries, n)
	}
	es, err := ob.Next(ctx, 1000)
	if err != nil || len(es) != n {
		t.Fatalf("Next after disk full = %d entries, %v; want %d", len(es), err, n)
	}
}

func TestClosed(t *testing.T) {
	db := openT(t, t.TempDir(), quietOptions())
	ob := db.Outbox()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	ctx := context.Background()
	if _, err := ob.Enqueue(ctx, testMsg("default/event/e", `1`), FIFO); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after Close = %v", err)
	}
	if _, err := ob.Next(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close = %v", err)
	}
	if _, err := ob.Ack(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Ack after Close = %v", err)
	}
}
