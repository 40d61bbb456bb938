package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

func testMsg(resource, content string) *wire.Message {
	return wire.NewMessage(wire.Route{
		Source:    "edged",
		Group:     wire.GroupResource,
		Operation: wire.OpUpdate,
		Resource:  resource,
	}, json.RawMessage(content))
}

func countRows(t testing.TB, db *DB) int {
	t.Helper()
	var n int
	if err := db.read.QueryRow(`SELECT COUNT(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func enqueue(t testing.TB, ob *Outbox, resource, content string, class Class) int64 {
	t.Helper()
	id, err := ob.Enqueue(context.Background(), testMsg(resource, content), class)
	if err != nil {
		t.Fatalf("Enqueue(%s, %s): %v", resource, content, err)
	}
	return id
}

func next(t testing.TB, ob *Outbox, n int) []Entry {
	t.Helper()
	es, err := ob.Next(context.Background(), n)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return es
}

func ack(t testing.TB, ob *Outbox, id int64) bool {
	t.Helper()
	ok, err := ob.Ack(context.Background(), id)
	if err != nil {
		t.Fatalf("Ack(%d): %v", id, err)
	}
	return ok
}

// summary renders entries as "key=content" for comparisons that read like the spec.
func summary(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Key + "=" + string(e.Message.Content)
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFIFOKeepsOrderAndNeverMerges(t *testing.T) {
	ob := openT(t, t.TempDir(), quietOptions()).Outbox()
	for i := range 5 {
		enqueue(t, ob, "default/event/web-1", strconv.Itoa(i), FIFO)
	}
	got := summary(next(t, ob, 10))
	want := []string{"default/event/web-1=0", "default/event/web-1=1", "default/event/web-1=2", "default/event/web-1=3", "default/event/web-1=4"}
	if !equal(got, want) {
		t.Errorf("Next = %v, want %v", got, want)
	}
	// Next does not remove; n limits.
	if got := summary(next(t, ob, 2)); !equal(got, want[:2]) {
		t.Errorf("Next(2) = %v", got)
	}
}

func TestCoalescedKeepsOnlyNewestAtOriginalPosition(t *testing.T) {
	ob := openT(t, t.TempDir(), quietOptions()).Outbox()
	enqueue(t, ob, "default/podstatus/web-1", `"v1"`, Coalesced)
	enqueue(t, ob, "default/event/web-1", `"e1"`, FIFO)
	enqueue(t, ob, "default/podstatus/web-2", `"w1"`, Coalesced)
	for i := 2; i <= 50; i++ {
		enqueue(t, ob, "default/podstatus/web-1", fmt.Sprintf(`"v%d"`, i), Coalesced)
	}
	got := summary(next(t, ob, 10))
	want := []string{`default/podstatus/web-1="v50"`, `default/event/web-1="e1"`, `default/podstatus/web-2="w1"`}
	if !equal(got, want) {
		t.Errorf("Next = %v, want %v", got, want)
	}
	st := ob.Stats()
	if st.Entries != 3 || st.Enqueued != 3 || st.Coalesced != 49 {
		t.Errorf("Stats = %+v, want 3 entries, 3 enqueued, 49 coalesced", st)
	}
}

func TestAckOfReplacedVersionKeepsNewer(t *testing.T) {
	ob := openT(t, t.TempDir(), quietOptions()).Outbox()
	enqueue(t, ob, "default/podstatus/web-1", `"old"`, Coalesced)
	inFlight := next(t, ob, 1)[0] // handed to the sender
	enqueue(t, ob, "default/podstatus/web-1", `"new"`, Coalesced)

	if ack(t, ob, inFlight.ID) {
		t.Error("Ack of the replaced version reported a removal")
	}
	es := next(t, ob, 10)
	if got := summary(es); !equal(got, []string{`default/podstatus/web-1="new"`}) {
		t.Fatalf("after stale ack: %v", got)
	}
	if es[0].ID == inFlight.ID || es[0].Seq != inFlight.Seq {
		t.Errorf("new version: id %d seq %d; old id %d seq %d: want new id, same seq", es[0].ID, es[0].Seq, inFlight.ID, inFlight.Seq)
	}
	// Acking by the old message id must not hit the new version either.
	if ok, err := ob.AckMessage(context.Background(), inFlight.Message.Header.ID); err != nil || ok {
		t.Errorf("AckMessage(old) = %v, %v", ok, err)
	}
	if !ack(t, ob, es[0].ID) {
		t.Error("Ack of the current version removed nothing")
	}
	if es := next(t, ob, 10); len(es) != 0 {
		t.Errorf("left after ack: %v", summary(es))
	}
	// A coalesced key acked and updated again queues behind others: no jumping the line.
	enqueue(t, ob, "default/event/x", `1`, FIFO)
	enqueue(t, ob, "default/podstatus/web-1", `"later"`, Coalesced)
	if got := summary(next(t, ob, 10)); !equal(got, []string{`default/event/x=1`, `default/podstatus/web-1="later"`}) {
		t.Errorf("order after re-enqueue: %v", got)
	}
	if st := ob.Stats(); st.StaleAcks != 2 || st.Acked != 1 {
		t.Errorf("Stats = %+v, want 2 stale acks, 1 acked", st)
	}
}

func TestAckMessage(t *testing.T) {
	ob := openT(t, t.TempDir(), quietOptions()).Outbox()
	enqueue(t, ob, "default/event/a", `1`, FIFO)
	enqueue(t, ob, "default/event/b", `2`, FIFO)
	es := next(t, ob, 2)
	ok, err := ob.AckMessage(context.Background(), es[1].Message.Header.ID)
	if err != nil || !ok {
		t.Fatalf("AckMessage = %v, %v", ok, err)
	}
	if got := summary(next(t, ob, 10)); !equal(got, []string{"default/event/a=1"}) {
		t.Errorf("left: %v", got)
	}
}

func TestKeyIsCanonicalAndValidated(t *testing.T) {
	ob := openT(t, t.TempDir(), quietOptions()).Outbox()
	ctx := context.Background()
	if _, err := ob.Enqueue(ctx, testMsg("Bad/Key", `1`), FIFO); !errors.Is(err, wire.ErrInvalid) {
		t.Errorf("bad resource: %v, want wire.ErrInvalid", err)
	}
	if _, err := ob.Enqueue(ctx, testMsg("default/event/a", `1`), Class(7)); err == nil {
		t.Error("unknown class accepted")
	}
	enqueue(t, ob, "null/nodestatus/edge-1", `1`, Coalesced)
	enqueue(t, ob, "null/nodestatus/edge-1", `2`, Coalesced)
	if got := summary(next(t, ob, 10)); !equal(got, []string{"null/nodestatus/edge-1=2"}) {
		t.Errorf("got %v", got)
	}
}

func TestNextAfterPagesBySeq(t *testing.T) {
	ob := openT(t, t.TempDir(), quietOptions()).Outbox()
	for i := range 5 {
		enqueue(t, ob, "default/event/e", strconv.Itoa(i), FIFO)
	}
	first := next(t, ob, 2)
	rest, err := ob.NextAfter(context.Background(), first[1].Seq, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(rest); !equal(got, []string{"default/event/e=2", "default/event/e=3", "default/event/e=4"}) {
		t.Errorf("NextAfter = %v", got)
	}
}

func TestOverflowDropsOldestFIFOAndKeepsLatestState(t *testing.T) {
	opts := quietOptions()
	opts.Outbox = OutboxLimits{MaxEntries: 4}
	ob := openT(t, t.TempDir(), opts).Outbox()

	enqueue(t, ob, "default/podstatus/a", `"a1"`, Coalesced)
	enqueue(t, ob, "default/event/e", `1`, FIFO)
	enqueue(t, ob, "default/event/e", `2`, FIFO)
	enqueue(t, ob, "default/podstatus/b", `"b1"`, Coalesced)
	// Full. A FIFO entry drops the oldest FIFO entry.
	enqueue(t, ob, "default/event/e", `3`, FIFO)
	// Replacing a pending coalesced entry needs no room.
	enqueue(t, ob, "default/podstatus/a", `"a2"`, Coalesced)
	// A new coalesced key also drops the oldest FIFO entry.
	enqueue(t, ob, "default/podstatus/c", `"c1"`, Coalesced)
	want := []string{`default/podstatus/a="a2"`, `default/podstatus/b="b1"`, `default/event/e=3`, `default/podstatus/c="c1"`}
	if got := summary(next(t, ob, 10)); !equal(got, want) {
		t.Fatalf("after overflow: %v, want %v", got, want)
	}
	// New coalesced key, one FIFO left: it goes.
	enqueue(t, ob, "default/podstatus/d", `"d1"`, Coalesced)
	// No FIFO left: a new coalesced key is kept over the limit, a FIFO entry is refused.
	enqueue(t, ob, "default/podstatus/e", `"e1"`, Coalesced)
	_, err := ob.Enqueue(context.Background(), testMsg("default/event/e", `4`), FIFO)
	if !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("FIFO into an outbox full of latest state = %v, want ErrOutboxFull", err)
	}
	want = []string{`default/podstatus/a="a2"`, `default/podstatus/b="b1"`, `default/podstatus/c="c1"`, `default/podstatus/d="d1"`, `default/podstatus/e="e1"`}
	if got := summary(next(t, ob, 10)); !equal(got, want) {
		t.Fatalf("final: %v, want %v", got, want)
	}
	st := ob.Stats()
	want2 := OutboxStats{Entries: 5, Bytes: st.Bytes, Enqueued: 8, Coalesced: 1, Dropped: 3, Rejected: 1, OverLimit: 1}
	if st != want2 {
		t.Errorf("Stats = %+v\nwant    %+v", st, want2)
	}
}

func TestOverflowByBytes(t *testing.T) {
	ob0 := openT(t, t.TempDir(), quietOptions()).Outbox()
	enqueue(t, ob0, "default/event/e", `"xxxxxxxxxx"`, FIFO)
	one := ob0.Stats().Bytes // the encoded size of one such message (ids are fixed-length)

	opts := quietOptions()
	opts.Outbox = OutboxLimits{MaxBytes: 3*one + one/2}
	ob := openT(t, t.TempDir(), opts).Outbox()
	for i := range 5 {
		enqueue(t, ob, "default/event/e", fmt.Sprintf(`"xxxxxxxxx%d"`, i), FIFO)
	}
	got := summary(next(t, ob, 10))
	want := []string{`default/event/e="xxxxxxxxx2"`, `default/event/e="xxxxxxxxx3"`, `default/event/e="xxxxxxxxx4"`}
	if !equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if st := ob.Stats(); st.Dropped != 2 || st.Bytes != 3*one {
		t.Errorf("Stats = %+v", st)
	}
	// A message larger than the whole budget is refused outright.
	big := fmt.Sprintf(`"%0*d"`, int(4*one), 0)
	if _, err := ob.Enqueue(context.Background(), testMsg("default/podstatus/p", big), Coalesced); !errors.Is(err, ErrOutboxFull) {
		t.Errorf("oversize entry: %v, want ErrOutboxFull", err)
	}
}

func TestSurvivesCloseAndReopen(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, quietOptions())
	ob := db.Outbox()
	enqueue(t, ob, "default/podstatus/a", `"a1"`, Coalesced)
	enqueue(t, ob, "default/event/e", `1`, FIFO)
	enqueue(t, ob, "default/event/e", `2`, FIFO)
	enqueue(t, ob, "default/podstatus/a", `"a2"`, Coalesced)
	handed := next(t, ob, 10) // handed out, never acked
	ack(t, ob, handed[1].ID)  // only e=1 was acknowledged
	before := summary(next(t, ob, 10))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openT(t, dir, quietOptions())
	ob = db.Outbox()
	after := next(t, ob, 10)
	if got := summary(after); !equal(got, before) {
		t.Fatalf("after reopen %v, want %v", got, before)
	}
	if st := ob.Stats(); st.Entries != 2 || st.Bytes <= 0 {
		t.Errorf("Stats after reopen = %+v", st)
	}
	// Coalescing still works against rows from before the restart.
	enqueue(t, ob, "default/podstatus/a", `"a3"`, Coalesced)
	if got := summary(next(t, ob, 10)); !equal(got, []string{`default/podstatus/a="a3"`, `default/event/e=2`}) {
		t.Errorf("coalesce after reopen: %v", got)
	}
	// IDs are not reused after restart: new ids exceed every id handed out before.
	for _, e := range next(t, ob, 10) {
		if e.Key == "default/podstatus/a" && e.ID <= handed[len(handed)-1].ID {
			t.Errorf("id %d reused (<= %d)", e.ID, handed[len(handed)-1].ID)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		if os.IsNotExist(err) {
			return
		}
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSurvivesCrash takes the files as they are on disk while the store is open (what a
// power cut leaves behind, given synchronous=FULL), opens the copy, and checks that every
// committed, unacknowledged entry is handed out again.
func TestSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	ob := openT(t, dir, quietOptions()).Outbox()
	enqueue(t, ob, "default/event/e", `1`, FIFO)
	enqueue(t, ob, "default/podstatus/a", `"a1"`, Coalesced)
	enqueue(t, ob, "default/event/e", `2`, FIFO)
	enqueue(t, ob, "default/podstatus/a", `"a2"`, Coalesced)
	handed := next(t, ob, 10)
	ack(t, ob, handed[0].ID)
	want := summary(next(t, ob, 10))

	crashed := t.TempDir()
	for _, suffix := range []string{"", "-wal"} { // -shm is rebuilt from the WAL
		copyFile(t, filepath.Join(dir, FileName+suffix), filepath.Join(crashed, FileName+suffix))
	}
	if _, err := os.Stat(filepath.Join(crashed, FileName+"-wal")); err != nil {
		t.Fatalf("no WAL to recover from: %v", err)
	}
	got := next(t, openT(t, crashed, quietOptions()).Outbox(), 10)
	if !equal(summary(got), want) {
		t.Errorf("after crash %v, want %v", summary(got), want)
	}

	// The other kind of crash: the process abandons its handle (no Close) and a new one
	// opens the same directory.
	again := next(t, openT(t, dir, quietOptions()).Outbox(), 10)
	if !equal(summary(again), want) {
		t.Errorf("second handle %v, want %v", summary(again), want)
	}
}

func TestConcurrentEnqueue(t *testing.T) {
	ob := openT(t, t.TempDir(), quietOptions()).Outbox()
	const workers, each = 6, 25
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := ob.Enqueue(ctx, testMsg(fmt.Sprintf("default/event/w%d", w), strconv.Itoa(i)), FIFO); err != nil {
					errs <- err
				}
				if _, err := ob.Enqueue(ctx, testMsg("default/podstatus/shared", strconv.Itoa(i)), Coalesced); err != nil {
					errs <- err
				}
			}
		})
	}
	readers := make(chan struct{})
	var rg sync.WaitGroup
	rg.Go(func() { // a sender reading concurrently must see a consistent queue
		for {
			select {
			case <-readers:
				return
			default:
			}
			if _, err := ob.Next(ctx, 50); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(readers)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	es := next(t, ob, 1000)
	if len(es) != workers*each+1 {
		t.Fatalf("%d entries, want %d", len(es), workers*each+1)
	}
	// Each worker's FIFO entries are in its own order.
	last := map[string]int{}
	for _, e := range es {
		if e.Class != FIFO {
			continue
		}
		n, _ := strconv.Atoi(string(e.Message.Content))
		if prev, ok := last[e.Key]; ok && n != prev+1 {
			t.Fatalf("%s: %d after %d", e.Key, n, prev)
		}
		last[e.Key] = n
	}
	if st := ob.Stats(); st.Entries != int64(len(es)) || st.Coalesced != workers*each-1 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestUndecodableRowsAreRemovedNotServed(t *testing.T) {
	db := openT(t, t.TempDir(), quietOptions())
	ob := db.Outbox()
	enqueue(t, ob, "default/event/e", `1`, FIFO)
	// A damaged row between two good ones, written behind the store's back.
	if _, err := db.write.Exec(`INSERT INTO outbox (seq, key, class, msg_id, msg, size, enqueued_at) VALUES (1000, 'default/event/e', 0, 'x', X'7B7D', 2, 0)`); err != nil {
		t.Fatal(err)
	}
	ob.entries.Add(1)
	ob.bytes.Add(2)
	id := enqueue(t, ob, "default/event/e", `2`, FIFO)
	if _, err := db.write.Exec(`UPDATE outbox SET seq = 2000 WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	if got := summary(next(t, ob, 10)); !equal(got, []string{"default/event/e=1", "default/event/e=2"}) {
		t.Errorf("Next = %v", got)
	}
	if st := ob.Stats(); st.Undecodable != 1 || st.Entries != 2 || int(st.Entries) != countRows(t, db) {
		t.Errorf("Stats = %+v", st)
	}
}

func TestAckAll(t *testing.T) {
	ob := openT(t, t.TempDir(), quietOptions()).Outbox()
	for i := range 4 {
		enqueue(t, ob, "default/event/e", strconv.Itoa(i), FIFO)
	}
	es := next(t, ob, 10)
	n, err := ob.AckAll(context.Background(), []int64{es[0].ID, es[2].ID, es[2].ID, 999999})
	if err != nil || n != 2 {
		t.Fatalf("AckAll = %d, %v; want 2", n, err)
	}
	if got := summary(next(t, ob, 10)); !equal(got, []string{"default/event/e=1", "default/event/e=3"}) {
		t.Errorf("left: %v", got)
	}
	if st := ob.Stats(); st.Acked != 2 || st.StaleAcks != 2 || st.Entries != 2 {
		t.Errorf("Stats = %+v", st)
	}
}
