package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skerry-io/skerry/pkg/wire"
)

// waitTimeout bounds every wait for a watcher; tests never sleep for a fixed time.
const waitTimeout = 10 * time.Second

// nextEvent returns the watcher's next event, failing the test if none comes in time or
// the watcher ends.
func nextEvent(t *testing.T, w *Watcher) Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watcher ended: %v", w.Err())
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("no event within the deadline")
	}
	return Event{}
}

// waitEnd drains the watcher until it ends and returns Err.
func waitEnd(t *testing.T, w *Watcher) error {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-w.Events():
			if !ok {
				return w.Err()
			}
		case <-deadline:
			t.Fatal("watcher did not end within the deadline")
		}
	}
}

func watchT(t *testing.T, db *DB, from int64) *Watcher {
	t.Helper()
	w, err := db.Watch(context.Background(), from)
	if err != nil {
		t.Fatalf("Watch(%d): %v", from, err)
	}
	t.Cleanup(w.Stop)
	return w
}

// podMsg is an object message whose content differs with spec, so each call with a new
// spec is a real change.
func podMsg(op wire.Operation, resource, uid, spec string) *wire.Message {
	content := json.RawMessage(fmt.Sprintf(`{"metadata":{"uid":%q,"resourceVersion":%q},"spec":%q}`, uid, spec, spec))
	return wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: op, Resource: resource}, content)
}

func fastOptions() Options {
	o := quietOptions()
	o.syncNormal = true // these tests are about ordering, not durability
	return o
}

type evSummary struct {
	Type     EventType
	Revision int64
	Key, UID string
	Content  string
}

func summarize(ev Event) evSummary {
	return evSummary{ev.Type, ev.Revision, ev.Object.Key.String(), ev.Object.UID, string(ev.Object.Content)}
}

// TestApplyMessageEvents: each real change is one event with the next revision; no-ops
// produce neither.
func TestApplyMessageEvents(t *testing.T) {
	db := openT(t, t.TempDir(), fastOptions())
	const pod = "default/pod/web-1"
	base := db.Revision()
	if base != firstRevision {
		t.Fatalf("fresh store at revision %d, want %d", base, firstRevision)
	}
	w := watchT(t, db, 0)

	v1 := podMsg(wire.OpInsert, pod, "u1", "a")
	v2 := podMsg(wire.OpUpdate, pod, "u1", "b")
	v3 := podMsg(wire.OpUpdate, pod, "u2", "c") // re-created under the same name
	steps := []struct {
		name string
		m    *wire.Message
		want []evSummary // revisions relative to base
	}{
		{"insert", v1, []evSummary{{Added, 1, pod, "u1", string(v1.Content)}}},
		{"identical resend", podMsg(wire.OpUpdate, pod, "u1", "a"), nil},
		{"update", v2, []evSummary{{Modified, 2, pod, "u1", string(v2.Content)}}},
		{"delete of an absent key", podMsg(wire.OpDelete, "default/pod/other", "x", "z"), nil},
		{"delete of another incarnation", podMsg(wire.OpDelete, pod, "old", "z"), nil},
		{"new uid", v3, []evSummary{{Deleted, 3, pod, "u1", string(v2.Content)}, {Added, 4, pod, "u2", string(v3.Content)}}},
		{"delete", podMsg(wire.OpDelete, pod, "u2", "z"), []evSummary{{Deleted, 5, pod, "u2", string(v3.Content)}}},
		{"delete again", podMsg(wire.OpDelete, pod, "u2", "z"), nil},
		{"delete without uid of an absent key", wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: wire.OpDelete, Resource: pod}, json.RawMessage("null")), nil},
	}
	for _, st := range steps {
		before := db.Revision()
		applyT(t, db, st.m)
		var got []evSummary
		for range st.want {
			got = append(got, summarize(nextEvent(t, w)))
		}
		for i := range st.want {
			st.want[i].Revision += base
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: events\n got %+v\nwant %+v", st.name, got, st.want)
		}
		if d := db.Revision() - before; d != int64(len(st.want)) {
			t.Fatalf("%s: revision moved by %d, want %d", st.name, d, len(st.want))
		}
	}
	// Nothing else is pending: the next event is the marker's.
	applyT(t, db, podMsg(wire.OpInsert, "default/pod/marker", "m", "m"))
	if ev := nextEvent(t, w); ev.Object.Key.String() != "default/pod/marker" {
		t.Fatalf("unexpected event %+v", summarize(ev))
	}
}

func TestGet(t *testing.T) {
	ctx := context.Background()
	db := openT(t, t.TempDir(), fastOptions())
	m := podMsg(wire.OpInsert, "null/node/edge-1", "n1", "a")
	applyT(t, db, m)
	obj, ok, err := db.Get(ctx, wire.Key{Type: wire.TypeNode, Name: "edge-1"})
	want := Object{Key: wire.Key{Type: wire.TypeNode, Name: "edge-1"}, UID: "n1", ResourceVersion: "a", Content: m.Content, Revision: firstRevision + 1}
	if err != nil || !ok || !reflect.DeepEqual(obj, want) {
		t.Fatalf("Get = %+v, %v, %v; want %+v", obj, ok, err, want)
	}
	for _, k := range []wire.Key{{Type: wire.TypeNode}, {Namespace: "null", Type: wire.TypeNode, Name: "x"}, {Namespace: "default", Name: "x"}} {
		if _, _, err := db.Get(ctx, k); !errors.Is(err, wire.ErrInvalid) {
			t.Errorf("Get(%+v) = %v, want ErrInvalid", k, err)
		}
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	db := openT(t, t.TempDir(), fastOptions())
	for _, r := range []string{
		"b/pod/web-2", "a/pod/web-1", "a-b/pod/x", "a/pod/web-0", "a/configmap/web-1",
		"null/node/edge-1", "null/node/edge-0",
	} {
		applyT(t, db, podMsg(wire.OpInsert, r, "u-"+r, "s"))
	}
	applyT(t, db, podMsg(wire.OpInsert, "b/pod/gone", "g", "s"))
	applyT(t, db, podMsg(wire.OpDelete, "b/pod/gone", "g", "s"))

	cases := []struct {
		typ  wire.ResourceType
		ns   string
		want []string
	}{
		{wire.TypePod, "", []string{"a-b/pod/x", "a/pod/web-0", "a/pod/web-1", "b/pod/web-2"}},
		{wire.TypePod, "a", []string{"a/pod/web-0", "a/pod/web-1"}},
		{wire.TypePod, "b", []string{"b/pod/web-2"}},
		{wire.TypePod, "c", []string{}},
		{wire.TypeConfigMap, "", []string{"a/configmap/web-1"}},
		{wire.TypeNode, "", []string{"null/node/edge-0", "null/node/edge-1"}},
		{wire.TypeSecret, "", []string{}},
	}
	for _, tc := range cases {
		t.Run(string(tc.typ)+"/"+tc.ns, func(t *testing.T) {
			objs, rev, err := db.List(ctx, tc.typ, tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, o := range objs {
				got = append(got, o.Key.String())
				if o.UID != "u-"+o.Key.String() || o.Revision <= firstRevision || o.Revision > rev {
					t.Errorf("object %+v", o)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("keys = %v, want %v", got, tc.want)
			}
			if rev != db.Revision() {
				t.Errorf("revision = %d, want the store's %d", rev, db.Revision())
			}
		})
	}
	for _, bad := range []struct {
		typ wire.ResourceType
		ns  string
	}{{"", ""}, {"Pod", ""}, {wire.TypePod, "null"}, {wire.TypePod, "Bad_NS"}} {
		if _, _, err := db.List(ctx, bad.typ, bad.ns); !errors.Is(err, wire.ErrInvalid) {
			t.Errorf("List(%q, %q) = %v, want ErrInvalid", bad.typ, bad.ns, err)
		}
	}
}

// TestListThenWatchUnderConcurrentWrites is the informer pattern: list, then watch from
// the list's revision, while writers keep changing objects. Every watcher must see every
// revision after its start exactly once, in order, whether it came from the log or live.
func TestListThenWatchUnderConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	db := openT(t, t.TempDir(), fastOptions())
	const writers, perWriter, watchEvery = 4, 60, 15
	final := int64(firstRevision + writers*perWriter)

	type result struct {
		from int64
		revs []int64
		err  error
	}
	results := make(chan result, perWriter/watchEvery+1)
	var wg sync.WaitGroup
	// consume reads w until it has seen final.
	consume := func(w *Watcher, from int64) {
		defer w.Stop()
		r := result{from: from}
		timeout := time.After(waitTimeout)
		for last := from; last < final; {
			select {
			case ev, ok := <-w.Events():
				if !ok {
					r.err = fmt.Errorf("ended: %w", w.Err())
					results <- r
					return
				}
				r.revs = append(r.revs, ev.Revision)
				last = ev.Revision
			case <-timeout:
				r.err = errors.New("timed out")
				results <- r
				return
			}
		}
		results <- r
	}
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			for j := range perWriter {
				// Writer 0 also starts watchers at different moments of the write storm.
				if i == 0 && j%watchEvery == 0 {
					_, from, err := db.List(ctx, wire.TypePod, "")
					if err != nil {
						errs <- err
						return
					}
					w, err := db.Watch(ctx, from)
					if err != nil {
						errs <- err
						return
					}
					wg.Go(func() { consume(w, from) })
				}
				m := podMsg(wire.OpUpdate, "default/pod/w"+strconv.Itoa(i), "u", strconv.Itoa(j))
				if err := db.ApplyMessage(ctx, m); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// One more from the very start, replaying the log while the storm goes on.
	wg.Go(func() {
		w, err := db.Watch(ctx, firstRevision)
		if err != nil {
			errs <- err
			return
		}
		consume(w, firstRevision)
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	close(results)
	n := 0
	for r := range results {
		n++
		if r.err != nil {
			t.Fatalf("watcher from %d: %v after %d events", r.from, r.err, len(r.revs))
		}
		for i, rev := range r.revs {
			if want := r.from + 1 + int64(i); rev != want {
				t.Fatalf("watcher from %d: event %d has revision %d, want %d (gap or duplicate)", r.from, i, rev, want)
			}
		}
	}
	if n != cap(results) {
		t.Fatalf("%d watchers reported, want %d", n, cap(results))
	}
	if db.Revision() != final {
		t.Fatalf("revision %d, want %d", db.Revision(), final)
	}
}

func TestWatchReplaysAcrossPages(t *testing.T) {
	db := openT(t, t.TempDir(), fastOptions())
	from := db.Revision()
	n := 2*replayPage + 7
	for i := range n {
		applyT(t, db, podMsg(wire.OpUpdate, "default/pod/p", "u", strconv.Itoa(i)))
	}
	w := watchT(t, db, from)
	for i := range n {
		ev := nextEvent(t, w)
		if ev.Revision != from+1+int64(i) || !strings.Contains(string(ev.Object.Content), `"spec":"`+strconv.Itoa(i)+`"`) {
			t.Fatalf("event %d = %+v", i, summarize(ev))
		}
	}
	applyT(t, db, podMsg(wire.OpUpdate, "default/pod/p", "u", "live"))
	if ev := nextEvent(t, w); ev.Revision != from+int64(n)+1 || ev.Type != Modified {
		t.Fatalf("live event = %+v", summarize(ev))
	}
}

// TestRevisionsSurviveReopen: revisions keep growing after a restart, a deleted object's
// revision is never handed out again, and a watch continues from a revision seen before.
func TestRevisionsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, quietOptions())
	applyT(t, db, podMsg(wire.OpInsert, "default/pod/a", "ua", "1"))
	seen := db.Revision()
	applyT(t, db, podMsg(wire.OpInsert, "default/pod/b", "ub", "1"))
	applyT(t, db, podMsg(wire.OpDelete, "default/pod/b", "ub", "1"))
	last := db.Revision()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openT(t, dir, quietOptions())
	if db.Revision() != last {
		t.Fatalf("revision after reopen = %d, want %d", db.Revision(), last)
	}
	w := watchT(t, db, seen)
	for _, want := range []evSummary{{Added, seen + 1, "default/pod/b", "ub", ""}, {Deleted, seen + 2, "default/pod/b", "ub", ""}} {
		got := summarize(nextEvent(t, w))
		got.Content = ""
		if got != want {
			t.Fatalf("replayed %+v, want %+v", got, want)
		}
	}
	applyT(t, db, podMsg(wire.OpInsert, "default/pod/b", "ub2", "1"))
	if ev := nextEvent(t, w); ev.Revision != last+1 || ev.Type != Added || ev.Object.UID != "ub2" {
		t.Fatalf("live after reopen = %+v", summarize(ev))
	}
}

func TestWatchRefusesCompactedAndFutureRevisions(t *testing.T) {
	ctx := context.Background()
	opts := fastOptions()
	opts.ChangeLog = 4
	db := openT(t, t.TempDir(), opts)
	for i := range 20 {
		applyT(t, db, podMsg(wire.OpUpdate, "default/pod/p", "u", strconv.Itoa(i)))
	}
	rev := db.Revision()
	var rows, compacted int64
	if err := db.read.QueryRow(`SELECT (SELECT COUNT(*) FROM changes), compacted FROM revision`).Scan(&rows, &compacted); err != nil {
		t.Fatal(err)
	}
	// At least the newest ChangeLog changes, at most one trim batch more.
	if rows < 4 || rows > 5 || rev-compacted != rows {
		t.Fatalf("change log holds %d rows, compacted %d, revision %d", rows, compacted, rev)
	}
	for _, from := range []int64{1, compacted - 1, rev + 1} {
		if _, err := db.Watch(ctx, from); !errors.Is(err, ErrCompacted) {
			t.Errorf("Watch(%d) = %v, want ErrCompacted", from, err)
		}
	}
	w := watchT(t, db, rev-4)
	for i := range int64(4) {
		if ev := nextEvent(t, w); ev.Revision != rev-3+i {
			t.Fatalf("replayed revision %d, want %d", ev.Revision, rev-3+i)
		}
	}
}

func TestSlowWatcherIsEnded(t *testing.T) {
	opts := fastOptions()
	opts.WatchBuffer = 2
	db := openT(t, t.TempDir(), opts)
	slow := watchT(t, db, 0)
	fast := watchT(t, db, 0)
	// Nobody reads slow: the writer must not wait for it, and a watcher that keeps up (the
	// writer paces itself on it) must not be affected.
	const n = 10
	for i := range n {
		applyT(t, db, podMsg(wire.OpUpdate, "default/pod/p", "u", strconv.Itoa(i)))
		if ev := nextEvent(t, fast); ev.Revision != firstRevision+1+int64(i) {
			t.Fatalf("fast watcher got revision %d", ev.Revision)
		}
	}
	if err := waitEnd(t, slow); !errors.Is(err, ErrWatcherTooSlow) {
		t.Fatalf("Err = %v, want ErrWatcherTooSlow", err)
	}
	if err := fast.Err(); err != nil {
		t.Fatalf("fast watcher ended: %v", err)
	}
}

func TestWatcherEnds(t *testing.T) {
	t.Run("Stop", func(t *testing.T) {
		db := openT(t, t.TempDir(), fastOptions())
		w := watchT(t, db, 0)
		w.Stop()
		w.Stop()
		if err := waitEnd(t, w); err != nil {
			t.Fatalf("Err after Stop = %v, want nil", err)
		}
	})
	t.Run("ctx", func(t *testing.T) {
		db := openT(t, t.TempDir(), fastOptions())
		ctx, cancel := context.WithCancel(context.Background())
		w, err := db.Watch(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Err(); err != nil {
			t.Fatalf("Err while running = %v", err)
		}
		cancel()
		if err := waitEnd(t, w); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err = %v, want context.Canceled", err)
		}
	})
	t.Run("Close", func(t *testing.T) {
		db := openT(t, t.TempDir(), fastOptions())
		applyT(t, db, podMsg(wire.OpInsert, "default/pod/p", "u", "1"))
		ws := []*Watcher{watchT(t, db, 0), watchT(t, db, firstRevision)} // live, and one blocked on a replayed event
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if err := waitEnd(t, w); !errors.Is(err, ErrClosed) {
				t.Fatalf("Err = %v, want ErrClosed", err)
			}
		}
		if _, err := db.Watch(context.Background(), 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Watch after Close = %v", err)
		}
		if _, _, err := db.List(context.Background(), wire.TypePod, ""); !errors.Is(err, ErrClosed) {
			t.Fatalf("List after Close = %v", err)
		}
	})
	t.Run("negative revision", func(t *testing.T) {
		db := openT(t, t.TempDir(), fastOptions())
		if _, err := db.Watch(context.Background(), -1); err == nil {
			t.Fatal("Watch(-1) succeeded")
		}
	})
}

// TestMigrationFromVersion2 upgrades a database written by the version-2 schema: its
// objects stay, get revisions in key order, and the change log starts after them.
func TestMigrationFromVersion2(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := open(ctx, dir, quietOptions(), schema()[:2])
	if err != nil {
		t.Fatal(err)
	}
	rows := [][4]string{
		{"default/pod/web-1", "u1", "10", `{"metadata":{"uid":"u1"}}`},
		{"null/node/edge-1", "n1", "11", `{"metadata":{"uid":"n1"}}`},
		{"default/configmap/cfg", "c1", "12", `{}`},
		{"Not/A/Key/At/All", "x", "1", `{}`}, // only a hand-edited file has one
	}
	for _, r := range rows {
		if _, err := old.write.Exec(`INSERT INTO objects (key, uid, resource_version, content) VALUES (?, ?, ?, ?)`, r[0], r[1], r[2], []byte(r[3])); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	db := openT(t, dir, quietOptions())
	if got := userVersion(t, db.write); got != len(schema()) {
		t.Fatalf("user_version = %d", got)
	}
	wantInventory(t, db,
		wire.InventoryItem{Key: "default/configmap/cfg", UID: "c1", ResourceVersion: "12"},
		wire.InventoryItem{Key: "default/pod/web-1", UID: "u1", ResourceVersion: "10"},
		wire.InventoryItem{Key: "null/node/edge-1", UID: "n1", ResourceVersion: "11"})
	want := map[string]int64{"default/configmap/cfg": 2, "default/pod/web-1": 3, "null/node/edge-1": 4}
	for _, typ := range []wire.ResourceType{wire.TypeConfigMap, wire.TypePod, wire.TypeNode} {
		objs, rev, err := db.List(ctx, typ, "")
		if err != nil || len(objs) != 1 || rev != 4 || objs[0].Revision != want[objs[0].Key.String()] {
			t.Fatalf("List(%s) = %+v, %d, %v", typ, objs, rev, err)
		}
	}
	if db.Revision() != 4 {
		t.Fatalf("Revision = %d, want 4", db.Revision())
	}
	if _, err := db.Watch(ctx, 3); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Watch from before the migration = %v, want ErrCompacted", err)
	}
	w := watchT(t, db, 4)
	applyT(t, db, objMsg(wire.OpUpdate, "default/pod/web-1", "u1", "13"))
	if ev := nextEvent(t, w); ev.Type != Modified || ev.Revision != 5 || ev.Object.Key.String() != "default/pod/web-1" {
		t.Fatalf("event = %+v", summarize(ev))
	}
	var v2 int
	if err := db.read.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'objects_v2'`).Scan(&v2); err != nil || v2 != 0 {
		t.Fatalf("old table left behind: %d, %v", v2, err)
	}
}

// TestApplyOnFullDiskPublishesNothing: a change that did not commit has no revision and no
// event, and the error is ErrDiskFull.
func TestApplyOnFullDiskPublishesNothing(t *testing.T) {
	db := openT(t, t.TempDir(), fastOptions())
	w := watchT(t, db, 0)
	var pages int
	if err := db.write.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.Exec("PRAGMA max_page_count = " + strconv.Itoa(pages+1)); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("a", 3000)
	var err error
	var ok int
	for i := 0; i < 100 && err == nil; i++ {
		m := wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: wire.OpInsert, Resource: "default/pod/p" + strconv.Itoa(i)},
			json.RawMessage(`{"metadata":{"uid":"u"},"pad":"`+big+`"}`))
		err = db.ApplyMessage(context.Background(), m)
		if err == nil {
			ok++
		}
	}
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("ApplyMessage on a full database = %v, want ErrDiskFull", err)
	}
	if got := db.Revision(); got != firstRevision+int64(ok) {
		t.Fatalf("revision %d after %d committed changes", got, ok)
	}
	for range ok {
		nextEvent(t, w)
	}
	select {
	case ev := <-w.Events():
		t.Fatalf("event for a failed write: %+v", summarize(ev))
	default:
	}
}

// TestListUsesIndex: listing one type reads that type's rows, not the whole table.
func TestListUsesIndex(t *testing.T) {
	db := openT(t, t.TempDir(), fastOptions())
	for _, q := range []struct {
		sql  string
		args []any
	}{{listQuery, []any{"pod"}}, {listInNamespaceQuery, []any{"pod", "a"}}} {
		rows, err := db.read.Query(`EXPLAIN QUERY PLAN `+q.sql, q.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notUsed int
			var detail string
			if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		_ = rows.Close()
		if p := strings.Join(plan, "; "); !strings.Contains(p, "USING INDEX objects_type_namespace") {
			t.Errorf("plan for %s: %s", q.sql, p)
		}
	}
}

// TestHandEditedKeyIsErrCorrupt: the store writes only keys that parse, so a row that does
// not is damage, reported as such rather than served.
func TestHandEditedKeyIsErrCorrupt(t *testing.T) {
	db := openT(t, t.TempDir(), fastOptions())
	if _, err := db.write.Exec(`INSERT INTO objects (key, type, namespace, uid, resource_version, content, revision)
		VALUES ('Bad Key', 'pod', 'default', 'u', '1', '{}', 1)`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.List(context.Background(), wire.TypePod, "default"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("List = %v, want ErrCorrupt", err)
	}
}
