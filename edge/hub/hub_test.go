package hub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

const nodeName = "edge-1"

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// checkGoroutines fails the test if goroutines it started still run at its end. Register it
// first: cleanups run last-in first-out.
func checkGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d running, %d before\n%s", runtime.NumGoroutine(), base, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// certs are real TLS identities from pkg/pki: the cloud's server certificate and the node's
// client certificate (CN system:node:edge-1, O system:nodes).
type certs struct {
	server *tls.Config
	client *tls.Config
}

func newCerts(t *testing.T) certs {
	t.Helper()
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "skerry-test-ca"})
	must(t, err)
	srvKP, err := ca.IssueServer("cloudcore", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	must(t, err)
	srv, err := transport.Certificate(srvKP)
	must(t, err)
	serverTLS, err := transport.ServerTLSConfig(srv, ca.Pool())
	must(t, err)
	nodeKP, err := ca.IssueClient(transport.NodeCommonNamePrefix+nodeName, transport.NodesOrganization)
	must(t, err)
	node, err := transport.Certificate(nodeKP)
	must(t, err)
	clientTLS, err := transport.ClientTLSConfig(node, ca.Pool(), "")
	must(t, err)
	return certs{server: serverTLS, client: clientTLS}
}

// cloud is a test cloudcore: it records every message, answers through its policy, and hands
// each connection to the test for downstream messages.
type cloud struct {
	mu    sync.Mutex
	msgs  []*wire.Message // every message received, all connections, in order
	conns []transport.Conn
	// policy returns the reply to m (nil: none) and whether to drop the connection after.
	policy func(m *wire.Message) (reply *wire.Message, drop bool)
}

// ackAll acknowledges everything except keepalives and replies.
func ackAll(m *wire.Message) (*wire.Message, bool) {
	if m.IsKeepalive() || isReply(m) {
		return nil, false
	}
	return m.Ack(), false
}

func (c *cloud) handle(ctx context.Context, conn transport.Conn) {
	c.mu.Lock()
	c.conns = append(c.conns, conn)
	c.mu.Unlock()
	for {
		m, err := conn.Read(ctx)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		policy := c.policy
		c.mu.Unlock()
		reply, drop := policy(m)
		if reply != nil {
			if err := conn.Write(ctx, reply); err != nil {
				return
			}
		}
		if drop {
			_ = conn.Close("test: dropping the connection")
			return
		}
	}
}

func (c *cloud) messages() []*wire.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*wire.Message(nil), c.msgs...)
}

func (c *cloud) conn(i int) transport.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i >= len(c.conns) {
		return nil
	}
	return c.conns[i]
}

func (c *cloud) connCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

// count returns how many recorded messages satisfy pred.
func (c *cloud) count(pred func(*wire.Message) bool) int {
	n := 0
	for _, m := range c.messages() {
		if pred(m) {
			n++
		}
	}
	return n
}

// serve runs c over WebSocket on addr until the returned stop is called (or the test ends).
func (c *cloud) serve(t *testing.T, cs certs, addr string) (string, func()) {
	t.Helper()
	srv, err := transport.ListenWebSocket(c.serverConfig(cs, addr))
	must(t, err)
	return c.run(t, srv)
}

func (c *cloud) serverConfig(cs certs, addr string) transport.ServerConfig {
	return transport.ServerConfig{
		Addr: addr, TLS: cs.server, Handler: c.handle,
		Options: transport.Options{Logger: testLogger()},
	}
}

func (c *cloud) run(t *testing.T, srv transport.Server) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Serve did not return")
			}
		})
	}
	t.Cleanup(stop)
	return srv.Addr().String(), stop
}

type memInventory struct{ inv wire.Inventory }

func (m *memInventory) Inventory(context.Context) (wire.Inventory, error) { return m.inv, nil }

// recApplier records applied messages; it fails those whose resource is in fail.
type recApplier struct {
	mu      sync.Mutex
	applied []*wire.Message
	fail    map[string]bool
}

func (a *recApplier) Apply(_ context.Context, m *wire.Message) error {
	if a.fail[m.Route.Resource] {
		return errors.New("test: refusing " + m.Route.Resource)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.applied = append(a.applied, m)
	return nil
}

func (a *recApplier) ids() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for _, m := range a.applied {
		ids = append(ids, m.Header.ID)
	}
	return ids
}

type env struct {
	protocol string // "" means the default, WebSocket
	certs    certs
	db       *store.DB
	ob       *store.Outbox
	inv      *memInventory
	app      *recApplier
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := store.Open(context.Background(), t.TempDir(), store.Options{Logger: testLogger()})
	must(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return &env{certs: newCerts(t), db: db, ob: db.Outbox(), inv: &memInventory{}, app: &recApplier{}}
}

// startHub runs a hub against addr until the test ends; stop cancels it and checks that Run
// returned.
func (e *env) startHub(t *testing.T, addr string, mod func(*Config)) (*Hub, func()) {
	t.Helper()
	d, err := NewDialer(e.protocol, transport.DialConfig{
		Addr: addr, NodeName: nodeName, TLS: e.certs.client,
		Options: transport.Options{Logger: testLogger()},
	})
	must(t, err)
	cfg := Config{
		NodeName: nodeName, Dialer: d, Outbox: e.ob, Inventory: e.inv, Applier: e.app,
		Backoff: Backoff{Base: 10 * time.Millisecond, Max: 100 * time.Millisecond},
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg, testLogger())
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return h, stop
}

func (e *env) enqueue(t *testing.T, resource string) string {
	t.Helper()
	m := wire.NewMessage(wire.Route{
		Source: wire.EdgeHubModule, Group: wire.GroupResource, Operation: wire.OpInsert, Resource: resource,
	}, json.RawMessage(`{}`))
	_, err := e.ob.Enqueue(context.Background(), m, store.FIFO)
	must(t, err)
	return m.Header.ID
}

func (e *env) outboxLen() int64 { return e.ob.Stats().Entries }

func isKeepalive(m *wire.Message) bool { return m.IsKeepalive() }

func downstream(resource string) *wire.Message {
	return wire.NewMessage(wire.Route{
		Source: "edgecontroller", Destination: "metamanager",
		Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: resource,
	}, json.RawMessage(`{"kind":"ConfigMap"}`))
}

func TestConnectSendsInventoryFirst(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	e.inv.inv = wire.Inventory{Items: []wire.InventoryItem{
		{Key: "default/pod/web-1", UID: "u1", ResourceVersion: "7"},
		{Key: "default/configmap/cfg", UID: "u2", ResourceVersion: "3"},
	}}
	// Entries enqueued while disconnected must not overtake the inventory.
	for i := range 3 {
		e.enqueue(t, "default/event/e-"+strconv.Itoa(i))
	}
	c := &cloud{policy: ackAll}
	addr, _ := c.serve(t, e.certs, "127.0.0.1:0")
	e.startHub(t, addr, nil)

	waitFor(t, "outbox drained", func() bool { return e.outboxLen() == 0 })
	msgs := c.messages()
	if !wire.IsInventory(msgs[0]) {
		t.Fatalf("first message is %s %s, want the inventory", msgs[0].Route.Operation, msgs[0].Route.Resource)
	}
	items, err := wire.DecodeInventory(msgs[0])
	must(t, err)
	if len(items) != 2 {
		t.Errorf("inventory has %d items, want 2", len(items))
	}
}

func TestDownstreamAppliedThenAcked(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	e.app.fail = map[string]bool{"default/configmap/bad": true}
	c := &cloud{policy: ackAll}
	addr, _ := c.serve(t, e.certs, "127.0.0.1:0")
	h, _ := e.startHub(t, addr, nil)
	waitFor(t, "connection", func() bool { return c.conn(0) != nil })

	good, bad, good2 := downstream("default/configmap/good"), downstream("default/configmap/bad"), downstream("default/configmap/good2")
	ctx := context.Background()
	for _, m := range []*wire.Message{good, bad, good2} {
		must(t, c.conn(0).Write(ctx, m))
	}
	replyTo := func(id string) *wire.Message {
		for _, m := range c.messages() {
			if isReply(m) && m.Header.ParentID == id {
				return m
			}
		}
		return nil
	}
	waitFor(t, "three replies", func() bool {
		return replyTo(good.Header.ID) != nil && replyTo(bad.Header.ID) != nil && replyTo(good2.Header.ID) != nil
	})
	for _, m := range []*wire.Message{good, good2} {
		r := replyTo(m.Header.ID)
		if r.Route.Operation != wire.OpResponse || string(r.Content) != wire.AckContent {
			t.Errorf("reply to %s: %s %s, want response \"OK\"", m.Route.Resource, r.Route.Operation, r.Content)
		}
	}
	if r := replyTo(bad.Header.ID); r.Route.Operation != wire.OpError {
		t.Errorf("reply to the failing message: %s, want error", r.Route.Operation)
	}
	if got, want := e.app.ids(), []string{good.Header.ID, good2.Header.ID}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("applied %v, want %v in arrival order", got, want)
	}
	if s := h.Stats(); s.Applied != 2 || s.ApplyErrors != 1 {
		t.Errorf("stats %+v, want 2 applied and 1 error", s)
	}
}

func TestOutboxRemovedOnlyAfterAck(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	var ackOutbox atomic.Bool
	c := &cloud{policy: func(m *wire.Message) (*wire.Message, bool) {
		if wire.IsInventory(m) || ackOutbox.Load() {
			return ackAll(m)
		}
		return nil, false
	}}
	for i := range 5 {
		e.enqueue(t, "default/event/offline-"+strconv.Itoa(i))
	}
	addr, _ := c.serve(t, e.certs, "127.0.0.1:0")
	h, _ := e.startHub(t, addr, nil)
	isEvent := func(m *wire.Message) bool { return m.Route.Operation == wire.OpInsert }

	waitFor(t, "5 entries delivered", func() bool { return c.count(isEvent) == 5 })
	if n := e.outboxLen(); n != 5 {
		t.Fatalf("outbox holds %d entries before any ack, want 5", n)
	}
	// Acknowledge what was delivered, then let the cloud ack new entries itself.
	ackOutbox.Store(true)
	for _, m := range c.messages() {
		if isEvent(m) {
			must(t, c.conn(0).Write(context.Background(), m.Ack()))
		}
	}
	waitFor(t, "outbox drained", func() bool { return e.outboxLen() == 0 })

	// Enqueued while connected: Notify wakes the sender.
	e.enqueue(t, "default/event/online")
	h.Notify()
	waitFor(t, "online entry acked", func() bool { return e.outboxLen() == 0 && c.count(isEvent) == 6 })
}

func TestErrorReplyDropsPoisonEntry(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	c := &cloud{policy: func(m *wire.Message) (*wire.Message, bool) {
		if m.Route.Resource == "default/event/poison" {
			return m.Error("test: refused"), false
		}
		return ackAll(m)
	}}
	e.enqueue(t, "default/event/poison")
	for i := range 3 {
		e.enqueue(t, "default/event/ok-"+strconv.Itoa(i))
	}
	addr, _ := c.serve(t, e.certs, "127.0.0.1:0")
	h, _ := e.startHub(t, addr, nil)
	waitFor(t, "outbox drained", func() bool { return e.outboxLen() == 0 })
	if s := h.Stats(); s.Rejected != 1 || s.Acked != 3 {
		t.Errorf("stats %+v, want 1 rejected and 3 acked", s)
	}
}

func TestReconnectLosesNothing(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	const entries = 60
	var received atomic.Int64
	c := &cloud{}
	c.policy = func(m *wire.Message) (*wire.Message, bool) {
		if m.Route.Operation != wire.OpInsert {
			return ackAll(m)
		}
		// Drop every 7th delivery before acking it: that entry must come again.
		if received.Add(1)%7 == 0 {
			return nil, true
		}
		return m.Ack(), false
	}
	addr, _ := c.serve(t, e.certs, "127.0.0.1:0")
	h, _ := e.startHub(t, addr, func(cfg *Config) { cfg.Window = 4 })

	// Each connection also gets one downstream message, sent exactly once.
	var sentDown []string
	sendDown := func(i int) {
		waitFor(t, "connection "+strconv.Itoa(i), func() bool { return c.conn(i) != nil })
		m := downstream("default/configmap/c-" + strconv.Itoa(i))
		if err := c.conn(i).Write(context.Background(), m); err == nil {
			sentDown = append(sentDown, m.Header.ID)
		}
	}
	sendDown(0)
	want := map[string]bool{}
	for i := range entries {
		want[e.enqueue(t, "default/event/e-"+strconv.Itoa(i))] = true
		h.Notify()
	}
	sendDown(1)
	sendDown(2)

	waitFor(t, "outbox drained", func() bool { return e.outboxLen() == 0 })
	seen := map[string]int{}
	for _, m := range c.messages() {
		if m.Route.Operation == wire.OpInsert {
			seen[m.Header.ID]++
		}
	}
	dups := 0
	for id := range want {
		if seen[id] == 0 {
			t.Errorf("entry %s never reached the cloud", id)
		}
		dups += seen[id] - 1
	}
	t.Logf("%d entries, %d connections, %d duplicate deliveries", entries, c.connCount(), dups)
	if c.connCount() < 2 {
		t.Errorf("only %d connections: the drops did not happen", c.connCount())
	}
	// A message written just as the cloud drops the connection may be lost (the real cloud
	// resends it); what must never happen is a message sent once being applied twice.
	waitFor(t, "first downstream applied", func() bool { return len(e.app.ids()) >= 1 })
	applied := map[string]int{}
	for _, id := range e.app.ids() {
		applied[id]++
	}
	for _, id := range sentDown {
		if applied[id] > 1 {
			t.Errorf("downstream %s sent once, applied %d times", id, applied[id])
		}
	}
}

func TestReconnectAfterServerRestart(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	c1 := &cloud{policy: ackAll}
	addr, stop1 := c1.serve(t, e.certs, "127.0.0.1:0")
	const maxBackoff = 100 * time.Millisecond
	e.startHub(t, addr, func(cfg *Config) { cfg.Backoff.Max = maxBackoff })
	waitFor(t, "first connection", func() bool { return c1.count(wire.IsInventory) == 1 })

	stop1()
	// The hub may retry while the port is closed: those dials fail and back off.
	c2 := &cloud{policy: ackAll}
	restarted := time.Now()
	c2.serve(t, e.certs, addr)
	waitFor(t, "inventory on the new server", func() bool { return c2.count(wire.IsInventory) == 1 })
	// Bound: one full backoff ceiling plus generous slack for TLS on a busy 2-core machine.
	if d := time.Since(restarted); d > maxBackoff+5*time.Second {
		t.Errorf("reconnected %v after the restart, want within the backoff bound", d)
	}
	if m := c2.messages()[0]; !wire.IsInventory(m) {
		t.Errorf("first message after reconnect is %s, want the inventory", m.Route.Operation)
	}
}

func TestKeepalive(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	c := &cloud{policy: ackAll}
	addr, _ := c.serve(t, e.certs, "127.0.0.1:0")
	e.startHub(t, addr, func(cfg *Config) { cfg.KeepaliveInterval = 20 * time.Millisecond })
	waitFor(t, "5 keepalives", func() bool { return c.count(isKeepalive) >= 5 })
	for _, m := range c.messages() {
		if !m.IsKeepalive() {
			continue
		}
		r := m.Route
		if r.Source != "websocket" || r.Group != "resource" || r.Resource != "node" || string(m.Content) != `"ping"` {
			t.Fatalf("keepalive %+v content %s does not match the spec", r, m.Content)
		}
	}
}

func TestInventoryRejectedReconnects(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	var rejections atomic.Int64
	c := &cloud{policy: func(m *wire.Message) (*wire.Message, bool) {
		if wire.IsInventory(m) && rejections.Add(1) <= 2 {
			return m.Error("test: not now"), false
		}
		return ackAll(m)
	}}
	addr, _ := c.serve(t, e.certs, "127.0.0.1:0")
	e.startHub(t, addr, nil)
	waitFor(t, "third connection", func() bool { return c.count(wire.IsInventory) >= 3 })
}

func TestBackoffFullJitter(t *testing.T) {
	for _, tc := range []struct{ base, max time.Duration }{
		{time.Second, 60 * time.Second},
		{10 * time.Millisecond, 100 * time.Millisecond},
		{3 * time.Second, 7 * time.Second},
		{time.Second, time.Second},
	} {
		var asked int64
		pick := func(n int64) int64 { asked = n; return n - 1 }
		b := Backoff{Base: tc.base, Max: tc.max, Rand: func(n int64) int64 { return pick(n) }}
		prev := time.Duration(0)
		for n := range 100 {
			ceil := b.Ceiling(n)
			want := tc.max
			if exact := float64(tc.base) * math.Pow(2, float64(n)); exact < float64(tc.max) {
				want = time.Duration(exact)
			}
			if ceil != want {
				t.Fatalf("base %v max %v: ceiling(%d) = %v, want min(max, base·2^n) = %v", tc.base, tc.max, n, ceil, want)
			}
			if ceil < prev {
				t.Fatalf("ceiling(%d) = %v shrank from %v", n, ceil, prev)
			}
			prev = ceil
			// The random draw covers the closed interval [0, ceiling]: both ends reachable.
			pick = func(n int64) int64 { asked = n; return n - 1 }
			if d := b.Delay(n); d != ceil || asked != int64(ceil)+1 {
				t.Fatalf("largest draw: delay %v (asked %d), want %v", d, asked, ceil)
			}
			pick = func(int64) int64 { return 0 }
			if d := b.Delay(n); d != 0 {
				t.Fatalf("smallest draw: delay %v, want 0", d)
			}
		}
	}
	// With the real source every delay stays inside its bound.
	b := Backoff{Base: time.Second, Max: 60 * time.Second}
	for n := range 50 {
		for range 50 {
			if d := b.Delay(n); d < 0 || d > b.Ceiling(n) {
				t.Fatalf("delay(%d) = %v outside [0, %v]", n, d, b.Ceiling(n))
			}
		}
	}
}

// TestBackoffGrowsOnShortSessions checks Run's failure count: sessions that end at once keep
// doubling the ceiling; a session that lasted ResetAfter starts over at Base.
func TestBackoffGrowsOnShortSessions(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	c := &cloud{policy: func(m *wire.Message) (*wire.Message, bool) { return nil, wire.IsInventory(m) }}
	addr, _ := c.serve(t, e.certs, "127.0.0.1:0")
	var mu sync.Mutex
	var ceilings []int64
	var long atomic.Bool
	var clock atomic.Int64 // fake seconds; each reading advances a minute while long is set
	e.startHub(t, addr, func(cfg *Config) {
		cfg.Backoff = Backoff{Base: time.Millisecond, Max: 8 * time.Millisecond, ResetAfter: time.Minute,
			Rand: func(n int64) int64 {
				mu.Lock()
				ceilings = append(ceilings, n-1)
				mu.Unlock()
				return 0
			}}
		cfg.Now = func() time.Time {
			if long.Load() {
				return time.Unix(clock.Add(60), 0)
			}
			return time.Unix(clock.Load(), 0)
		}
	})
	got := func() []int64 {
		mu.Lock()
		defer mu.Unlock()
		return append([]int64(nil), ceilings...)
	}
	waitFor(t, "6 short sessions", func() bool { return len(got()) >= 6 })
	ms := int64(time.Millisecond)
	want := []int64{1 * ms, 2 * ms, 4 * ms, 8 * ms, 8 * ms, 8 * ms}
	if g := got()[:6]; fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("ceilings %v, want %v", g, want)
	}
	long.Store(true)
	n := len(got())
	waitFor(t, "sessions after the clock jumps", func() bool { return len(got()) >= n+3 })
	if g := got(); g[len(g)-1] != ms {
		t.Errorf("ceiling after a long session %v, want base %v", time.Duration(g[len(g)-1]), time.Millisecond)
	}
}

func TestQUIC(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	e.protocol = transport.ProtocolQUIC
	c := &cloud{policy: ackAll}
	srv, err := transport.ListenQUIC(c.serverConfig(e.certs, "127.0.0.1:0"))
	must(t, err)
	addr, _ := c.run(t, srv)
	e.enqueue(t, "default/event/over-quic")
	e.startHub(t, addr, nil)
	waitFor(t, "outbox drained over QUIC", func() bool { return e.outboxLen() == 0 })
	if m := c.messages()[0]; !wire.IsInventory(m) {
		t.Errorf("first message is %s, want the inventory", m.Route.Operation)
	}
	if c.conn(0).Protocol() != transport.ProtocolQUIC {
		t.Errorf("protocol %s, want quic", c.conn(0).Protocol())
	}
}

func TestNewDialerRejectsUnknownProtocol(t *testing.T) {
	if _, err := NewDialer("carrier-pigeon", transport.DialConfig{}); err == nil {
		t.Fatal("NewDialer accepted an unknown protocol")
	}
}

// TestAckTimeoutResends: a cloud that silently loses the first delivery of every entry still
// gets each one, on the same connection, once AckTimeout passes.
func TestAckTimeoutResends(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	var mu sync.Mutex
	seen := map[string]bool{}
	c := &cloud{policy: func(m *wire.Message) (*wire.Message, bool) {
		if m.Route.Operation != wire.OpInsert {
			return ackAll(m)
		}
		mu.Lock()
		defer mu.Unlock()
		if !seen[m.Header.ID] {
			seen[m.Header.ID] = true
			return nil, false
		}
		return m.Ack(), false
	}}
	for i := range 3 {
		e.enqueue(t, "default/event/lost-"+strconv.Itoa(i))
	}
	addr, _ := c.serve(t, e.certs, "127.0.0.1:0")
	h, _ := e.startHub(t, addr, func(cfg *Config) { cfg.AckTimeout = 50 * time.Millisecond })
	waitFor(t, "outbox drained", func() bool { return e.outboxLen() == 0 })
	if s := h.Stats(); s.Resends == 0 || c.connCount() != 1 {
		t.Errorf("stats %+v over %d connections, want resends on one connection", s, c.connCount())
	}
}

func TestRequestGetsItsAnswerAndFailsOffline(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t)
	c := &cloud{policy: func(m *wire.Message) (*wire.Message, bool) {
		if m.Route.Operation == wire.OpQuery {
			if !m.Header.Sync {
				return m.Error("test: request without sync"), false
			}
			return m.Reply(json.RawMessage(`{"answer":"` + m.Route.Resource + `"}`)), false
		}
		return ackAll(m)
	}}
	query := func() *wire.Message {
		return wire.NewMessage(wire.Route{Source: "metaserver", Group: wire.GroupResource, Operation: wire.OpQuery, Resource: "default/configmap/cfg"}, nil)
	}
	h, _ := e.startHub(t, "127.0.0.1:1", nil) // nothing listens there: offline
	if _, err := h.Request(context.Background(), query()); !errors.Is(err, ErrOffline) {
		t.Fatalf("offline request: %v, want ErrOffline", err)
	}

	addr, _ := c.serve(t, e.certs, "127.0.0.1:0")
	h2, _ := e.startHub(t, addr, nil)
	var r *wire.Message
	waitFor(t, "request answered", func() bool {
		var err error
		r, err = h2.Request(context.Background(), query())
		return err == nil
	})
	if r.Route.Operation != wire.OpResponse || string(r.Content) != `{"answer":"default/configmap/cfg"}` {
		t.Errorf("answer %s %s", r.Route.Operation, r.Content)
	}
	// Concurrent requests each get their own answer.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			q := query()
			r, err := h2.Request(context.Background(), q)
			if err != nil || r.Header.ParentID != q.Header.ID {
				t.Errorf("concurrent request: %v, parent %v", err, r)
			}
		})
	}
	wg.Wait()
}
