package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skerry-io/skerry/cloud/hub/queue"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// observer records session events in order.
type observer struct {
	mu     sync.Mutex
	events []string // "connected <node> <protocol>" or "disconnected <node>: <reason>"
}

func (o *observer) NodeConnected(node string, info SessionInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, "connected "+node+" "+info.Protocol)
}

func (o *observer) NodeDisconnected(node, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, "disconnected "+node+": "+reason)
}

func (o *observer) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.events)
}

func (o *observer) has(prefix string) bool {
	return slices.ContainsFunc(o.snapshot(), func(e string) bool { return strings.HasPrefix(e, prefix) })
}

// upstream records handled messages, fails those whose resource contains "bad", fails
// transiently those containing "flaky", and answers queries with the resource as content.
type upstream struct {
	mu   sync.Mutex
	seen []string // node + " " + resource
}

func (u *upstream) Handle(_ context.Context, node string, m *wire.Message) (json.RawMessage, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.seen = append(u.seen, node+" "+m.Route.Resource)
	switch {
	case strings.Contains(m.Route.Resource, "bad"):
		return nil, errors.New("cannot store " + m.Route.Resource)
	case strings.Contains(m.Route.Resource, "flaky"):
		return nil, fmt.Errorf("api server away: %w", ErrTransient)
	case m.Route.Operation == wire.OpQuery:
		return json.RawMessage(strconv.Quote(m.Route.Resource)), nil
	}
	return nil, nil
}

func (u *upstream) snapshot() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// desired is a fixed desired set for every node.
type desired map[wire.Key]queue.Version

func (d desired) Desired(context.Context, string) (map[wire.Key]Object, error) {
	out := make(map[wire.Key]Object, len(d))
	for k, v := range d {
		out[k] = Object{Version: v, Message: func() (*wire.Message, error) { return objectMsg(k, v), nil }}
	}
	return out, nil
}

func objectMsg(k wire.Key, v queue.Version) *wire.Message {
	m := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: k.String()},
		json.RawMessage(fmt.Sprintf(`{"metadata":{"name":%q,"uid":%q,"resourceVersion":%q}}`, k.Name, v.UID, v.ResourceVersion)))
	m.Header.ResourceVersion = v.ResourceVersion
	return m
}

func podKey(name string) wire.Key {
	return wire.Key{Namespace: "default", Type: wire.TypePod, Name: name}
}

// fixture is a running hub with a WebSocket and a QUIC server on 127.0.0.1.
type fixture struct {
	t        *testing.T
	ca       *pki.CA
	hub      *Hub
	obs      *observer
	up       *upstream
	wsAddr   string
	quicAddr string
	cancel   context.CancelFunc
	runErr   chan error
	// manualInventory: the test sends the edge's inventory itself.
	manualInventory bool
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "hub-test-ca"})
	must(t, err)
	srvKP, err := ca.IssueServer("cloudcore", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	must(t, err)
	srvCert, err := transport.Certificate(srvKP)
	must(t, err)
	serverTLS, err := transport.ServerTLSConfig(srvCert, ca.Pool())
	must(t, err)

	f := &fixture{t: t, ca: ca, obs: &observer{}, up: &upstream{}, runErr: make(chan error, 1)}
	if cfg.Upstream == nil {
		cfg.Upstream = f.up
	}
	cfg.Observer = f.obs
	if cfg.Queue.InitialBackoff == 0 {
		cfg.Queue.InitialBackoff = 20 * time.Millisecond
	}
	f.hub, err = New(cfg, nil)
	must(t, err)
	ws, err := transport.ListenWebSocket(transport.ServerConfig{Addr: "127.0.0.1:0", TLS: serverTLS, Handler: f.hub.ServeConn})
	must(t, err)
	qs, err := transport.ListenQUIC(transport.ServerConfig{Addr: "127.0.0.1:0", TLS: serverTLS, Handler: f.hub.ServeConn})
	must(t, err)
	f.wsAddr, f.quicAddr = ws.Addr().String(), qs.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.runErr <- f.hub.Run(ctx, ws, qs) }()
	t.Cleanup(f.stop)
	return f
}

// stop cancels the hub and waits for Run to return.
func (f *fixture) stop() {
	f.cancel()
	select {
	case err, ok := <-f.runErr:
		if ok {
			close(f.runErr)
			if err != nil {
				f.t.Errorf("Run: %v", err)
			}
		}
	case <-time.After(10 * time.Second):
		f.t.Error("Run did not return after cancel")
	}
}

// edge is a test edge node: it reads everything the hub sends and, when autoAck is on,
// acknowledges object messages the way a real edge does after committing them.
type edge struct {
	t       *testing.T
	conn    transport.Conn
	msgs    chan *wire.Message
	readErr chan error
	mu      sync.Mutex
	autoAck bool
	// invID is the empty inventory the test edge sends on connect, as edgecore does; its
	// answer is not passed on to the test.
	invID string
}

func (f *fixture) dial(node, protocol string, autoAck bool) *edge {
	e, err := f.tryDial(node, protocol, autoAck)
	must(f.t, err)
	return e
}

func (f *fixture) tryDial(node, protocol string, autoAck bool) (*edge, error) {
	t := f.t
	t.Helper()
	kp, err := f.ca.IssueClient(transport.NodeCommonNamePrefix+node, transport.NodesOrganization)
	must(t, err)
	cert, err := transport.Certificate(kp)
	must(t, err)
	ctls, err := transport.ClientTLSConfig(cert, f.ca.Pool(), "")
	must(t, err)
	dc := transport.DialConfig{NodeName: node, TLS: ctls}
	var d transport.Dialer
	if protocol == transport.ProtocolQUIC {
		dc.Addr = f.quicAddr
		d = transport.QUICDialer{Config: dc}
	} else {
		dc.Addr = f.wsAddr
		d = transport.WebSocketDialer{Config: dc}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx)
	if err != nil {
		return nil, err
	}
	e := &edge{t: t, conn: c, msgs: make(chan *wire.Message, 1024), readErr: make(chan error, 1), autoAck: autoAck}
	if !f.manualInventory {
		inv, err := wire.NewInventoryMessage(wire.Inventory{})
		must(t, err)
		e.invID = inv.Header.ID
		must(t, c.Write(ctx, inv))
	}
	go e.readLoop()
	t.Cleanup(func() { _ = c.Close("test over"); <-e.readErr })
	return e, nil
}

func (e *edge) readLoop() {
	defer close(e.msgs)
	for {
		m, err := e.conn.Read(context.Background())
		if err != nil {
			e.readErr <- err
			close(e.readErr)
			return
		}
		if e.invID != "" && m.Header.ParentID == e.invID {
			continue
		}
		e.msgs <- m // before the ack, so a drained queue means the test has seen the message
		e.mu.Lock()
		ack := e.autoAck
		e.mu.Unlock()
		if ack && m.Route.Operation != wire.OpResponse && m.Route.Operation != wire.OpError {
			_ = e.conn.Write(context.Background(), m.Ack())
		}
	}
}

func (e *edge) send(m *wire.Message) {
	e.t.Helper()
	must(e.t, e.conn.Write(context.Background(), m))
}

func (e *edge) next() *wire.Message {
	e.t.Helper()
	select {
	case m, ok := <-e.msgs:
		if !ok {
			e.t.Fatalf("connection closed while waiting for a message")
		}
		return m
	case <-time.After(10 * time.Second):
		e.t.Fatal("timed out waiting for a message")
	}
	return nil
}

// closedWith waits until the hub closes the connection and returns its reason.
func (e *edge) closedWith() string {
	e.t.Helper()
	for {
		select {
		case _, ok := <-e.msgs:
			if ok {
				continue
			}
			err := <-e.readErr
			var ce *transport.CloseError
			if !errors.As(err, &ce) {
				e.t.Fatalf("connection ended without a close reason: %v", err)
			}
			return ce.Reason
		case <-time.After(10 * time.Second):
			e.t.Fatal("timed out waiting for the hub to close the connection")
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func upsert(t *testing.T, h *Hub, node string, k wire.Key, v queue.Version) *wire.Message {
	t.Helper()
	m := objectMsg(k, v)
	must(t, h.Upsert(node, k, v, m))
	return m
}

func describe(m *wire.Message) string { return string(m.Route.Operation) + " " + m.Route.Resource }

func TestResyncSendsExactlyTheDifference(t *testing.T) {
	v := func(uid, rv string) queue.Version { return queue.Version{UID: uid, ResourceVersion: rv} }
	want := desired{
		podKey("same"):    v("u-same", "1"),
		podKey("newer"):   v("u-newer", "2"),
		podKey("missing"): v("u-missing", "1"),
		podKey("reborn"):  v("u-reborn-2", "5"),
	}
	f := newFixture(t, Config{Desired: want})
	f.manualInventory = true
	e := f.dial("edge-1", transport.ProtocolWebSocket, true)
	waitFor(t, "connect event", func() bool { return f.obs.has("connected edge-1 websocket") })

	inv, err := wire.NewInventoryMessage(wire.Inventory{Items: []wire.InventoryItem{
		{Key: "default/pod/same", UID: "u-same", ResourceVersion: "1"},
		{Key: "default/pod/newer", UID: "u-newer", ResourceVersion: "1"},
		{Key: "default/pod/reborn", UID: "u-reborn-1", ResourceVersion: "4"},
		{Key: "default/pod/gone", UID: "u-gone", ResourceVersion: "3"},
	}})
	must(t, err)
	e.send(inv)

	// The inventory is answered once the difference is queued, and the test edge hands a
	// message to the test before acknowledging it; so once the answer arrived and the queue
	// is drained, every message the resync produced is in e.msgs: "nothing else" needs no sleep.
	var got []string
	record := func(m *wire.Message) {
		got = append(got, describe(m))
		if m.Route.Operation == wire.OpDelete && m.Route.Resource == "default/pod/gone" {
			if want := `{"metadata":{"name":"gone","namespace":"default","uid":"u-gone"}}`; string(m.Content) != want {
				t.Errorf("delete content = %s, want %s", m.Content, want)
			}
		}
	}
	for {
		m := e.next()
		if m.Route.Operation != wire.OpResponse {
			record(m)
			continue
		}
		if m.Header.ParentID != inv.Header.ID || string(m.Content) != wire.AckContent {
			t.Fatalf("unexpected answer %+v", m)
		}
		break
	}
	waitFor(t, "queue drained", func() bool {
		s, _ := f.hub.QueueStats("edge-1")
		return s.Queued == 0 && s.InFlight == 0
	})
	for len(e.msgs) > 0 {
		record(<-e.msgs)
	}
	wantMsgs := []string{"delete default/pod/gone", "delete default/pod/reborn", "update default/pod/missing", "update default/pod/newer", "update default/pod/reborn"}
	sorted := slices.Sorted(slices.Values(got))
	if !slices.Equal(sorted, wantMsgs) {
		t.Fatalf("resync sent %v, want %v", got, wantMsgs)
	}
	if slices.Index(got, "delete default/pod/reborn") > slices.Index(got, "update default/pod/reborn") {
		t.Errorf("uid change must arrive as delete then upsert, got %v", got)
	}
	if s, _ := f.hub.QueueStats("edge-1"); s.Sent != 5 || s.Retries != 0 {
		t.Errorf("queue stats %+v, want 5 sent and no retries", s)
	}
}

func TestUnackedMessageIsResentAfterAckTimeout(t *testing.T) {
	f := newFixture(t, Config{Queue: queue.Options{AckTimeout: 150 * time.Millisecond, InitialBackoff: 10 * time.Millisecond}})
	e := f.dial("edge-1", transport.ProtocolQUIC, false)
	m := upsert(t, f.hub, "edge-1", podKey("web"), queue.Version{UID: "u", ResourceVersion: "1"})
	first := e.next()
	second := e.next() // not acknowledged: sent again
	if first.Header.ID != m.Header.ID || second.Header.ID != m.Header.ID {
		t.Fatalf("got %s then %s, want %s twice", first.Header.ID, second.Header.ID, m.Header.ID)
	}
	e.send(second.Ack())
	waitFor(t, "ack recorded", func() bool {
		s, _ := f.hub.QueueStats("edge-1")
		return s.Acked == 1 && s.InFlight == 0 && s.Queued == 0
	})
}

func TestSecondConnectionReplacesTheFirst(t *testing.T) {
	f := newFixture(t, Config{})
	old := f.dial("edge-1", transport.ProtocolWebSocket, false)
	waitFor(t, "first session", func() bool { return f.hub.Connected("edge-1") })
	m1 := upsert(t, f.hub, "edge-1", podKey("a"), queue.Version{UID: "a", ResourceVersion: "1"})
	if got := old.next(); got.Header.ID != m1.Header.ID {
		t.Fatalf("first connection got %s", describe(got))
	}
	// m1 is in flight on the old connection and never acknowledged there.
	repl := f.dial("edge-1", transport.ProtocolQUIC, true)
	if reason := old.closedWith(); reason != ReasonReplaced {
		t.Errorf("old connection closed with %q, want %q", reason, ReasonReplaced)
	}
	m2 := upsert(t, f.hub, "edge-1", podKey("b"), queue.Version{UID: "b", ResourceVersion: "1"})
	seen := map[string]bool{}
	for !seen[m1.Header.ID] || !seen[m2.Header.ID] {
		seen[repl.next().Header.ID] = true
	}
	waitFor(t, "queue drained", func() bool {
		s, _ := f.hub.QueueStats("edge-1")
		return s.Queued == 0 && s.InFlight == 0
	})
	want := []string{"connected edge-1 websocket", "disconnected edge-1: " + ReasonReplaced, "connected edge-1 quic"}
	if got := f.obs.snapshot(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestSilentEdgeIsDropped(t *testing.T) {
	f := newFixture(t, Config{KeepaliveTimeout: 300 * time.Millisecond})
	talker := f.dial("edge-1", transport.ProtocolWebSocket, true)
	silent := f.dial("edge-2", transport.ProtocolWebSocket, true)

	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = talker.conn.Write(context.Background(), wire.NewKeepalive())
			}
		}
	}()
	if reason := silent.closedWith(); !strings.Contains(reason, "keepalive timeout") {
		t.Errorf("silent edge closed with %q", reason)
	}
	waitFor(t, "disconnect event", func() bool { return f.obs.has("disconnected edge-2: keepalive timeout") })
	if !f.hub.Connected("edge-1") {
		t.Error("an edge sending keepalives was dropped")
	}
	close(stop)
	<-pinged
	if reason := talker.closedWith(); !strings.Contains(reason, "keepalive timeout") {
		t.Errorf("edge closed with %q after it stopped pinging", reason)
	}
}

func TestNodeLimit(t *testing.T) {
	f := newFixture(t, Config{MaxNodes: 2})
	f.dial("edge-1", transport.ProtocolWebSocket, true)
	f.dial("edge-2", transport.ProtocolQUIC, true)
	waitFor(t, "two sessions", func() bool { return f.hub.Connected("edge-1") && f.hub.Connected("edge-2") })

	third, err := f.tryDial("edge-3", transport.ProtocolWebSocket, true)
	if err == nil {
		reason := third.closedWith()
		if !strings.Contains(reason, "node limit") {
			t.Errorf("third node closed with %q", reason)
		}
	} else if !strings.Contains(err.Error(), "node limit") {
		t.Errorf("third node refused with %v", err)
	}
	if f.hub.Connected("edge-3") {
		t.Error("edge-3 connected beyond the limit")
	}
	// A node already counted may still reconnect: that replaces, it does not add.
	f.dial("edge-1", transport.ProtocolQUIC, true)
	waitFor(t, "edge-1 reconnected", func() bool { return f.obs.has("connected edge-1 quic") })
}

func TestUpstreamMessagesAreHandledInOrderAndAnswered(t *testing.T) {
	f := newFixture(t, Config{})
	e := f.dial("edge-1", transport.ProtocolWebSocket, false)
	var sent []*wire.Message
	var want []string
	for i := range 20 {
		name := fmt.Sprintf("p%02d", i)
		if i == 7 {
			name = "bad"
		}
		m := wire.NewMessage(wire.Route{Source: "edged", Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: "default/podstatus/" + name}, json.RawMessage(`{}`))
		sent = append(sent, m)
		want = append(want, "edge-1 default/podstatus/"+name)
		e.send(m)
	}
	for i, m := range sent {
		r := e.next()
		if r.Header.ParentID != m.Header.ID {
			t.Fatalf("answer %d is for %s, want %s (FIFO)", i, r.Header.ParentID, m.Header.ID)
		}
		switch {
		case i == 7:
			if r.Route.Operation != wire.OpError || !strings.Contains(string(r.Content), "cannot store default/podstatus/bad") {
				t.Errorf("failed Handle answered %s %s", r.Route.Operation, r.Content)
			}
		case r.Route.Operation != wire.OpResponse || string(r.Content) != wire.AckContent:
			t.Errorf("answer %d: %s %s, want an ack", i, r.Route.Operation, r.Content)
		}
	}
	if got := f.up.snapshot(); !slices.Equal(got, want) {
		t.Errorf("Handle saw %v, want %v", got, want)
	}
}

func TestUpstreamRepliesAndTransientFailures(t *testing.T) {
	f := newFixture(t, Config{})
	e := f.dial("edge-1", transport.ProtocolWebSocket, false)
	flaky := wire.NewMessage(wire.Route{Source: "edged", Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: "default/podstatus/flaky"}, json.RawMessage(`{}`))
	query := wire.NewMessage(wire.Route{Source: "edged", Group: wire.GroupResource, Operation: wire.OpQuery, Resource: "default/configmap/cfg"}, nil)
	e.send(flaky)
	e.send(query)
	// The transient failure is not answered at all, so the first answer is the query's.
	r := e.next()
	if r.Header.ParentID != query.Header.ID {
		t.Fatalf("first answer is for %s, want the query %s (a transient failure gets none)", r.Header.ParentID, query.Header.ID)
	}
	if r.Route.Operation != wire.OpResponse || string(r.Content) != `"default/configmap/cfg"` {
		t.Errorf("query answered %s %s, want a response carrying Handle's reply", r.Route.Operation, r.Content)
	}
}

func TestSendRateLimit(t *testing.T) {
	const rate, burst, n = 50, 5, 40
	f := newFixture(t, Config{SendRate: rate, SendBurst: burst})
	for i := range n {
		upsert(t, f.hub, "edge-1", podKey(fmt.Sprintf("p%02d", i)), queue.Version{UID: "u", ResourceVersion: "1"})
	}
	start := time.Now()
	e := f.dial("edge-1", transport.ProtocolWebSocket, true)
	for range n {
		e.next()
	}
	// The bucket allows burst at once and then rate per second: n messages take at least
	// (n-burst)/rate = 0.7 s. The bound is loose on purpose.
	lower := time.Duration((n-burst)*700/rate) * time.Millisecond // 70% of the exact bound
	if took := time.Since(start); took < lower {
		t.Errorf("%d messages in %s, faster than the limit allows (%s)", n, took, lower)
	}
}

func TestCancelStopsEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		f := newFixture(t, Config{})
		a := f.dial("edge-1", transport.ProtocolWebSocket, true)
		b := f.dial("edge-2", transport.ProtocolQUIC, false)
		upsert(t, f.hub, "edge-2", podKey("x"), queue.Version{UID: "x", ResourceVersion: "1"})
		b.next()
		waitFor(t, "both connected", func() bool { return f.hub.Connected("edge-1") && f.hub.Connected("edge-2") })
		f.stop()
		for _, e := range []*edge{a, b} {
			if reason := e.closedWith(); !strings.Contains(reason, "shutting down") {
				t.Errorf("edge closed with %q on shutdown", reason)
			}
		}
		waitFor(t, "disconnect events", func() bool {
			return f.obs.has("disconnected edge-1") && f.obs.has("disconnected edge-2")
		})
		if err := f.hub.Upsert("edge-1", podKey("late"), queue.Version{}, objectMsg(podKey("late"), queue.Version{})); !errors.Is(err, queue.ErrClosed) {
			t.Errorf("Upsert after Run returned %v, want queue.ErrClosed", err)
		}
		_ = a.conn.Close("done")
		_ = b.conn.Close("done")
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutine leak: %d running, %d before\n%s", runtime.NumGoroutine(), base, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// keepDesired is a desired set where some keys could not be built (Object.Keep).
type keepDesired struct {
	set  desired
	keep []wire.Key
}

func (d keepDesired) Desired(ctx context.Context, node string) (map[wire.Key]Object, error) {
	out, _ := d.set.Desired(ctx, node)
	for _, k := range d.keep {
		out[k] = Object{Keep: true}
	}
	return out, nil
}

func TestResyncSettlesQueuedWorkAndKeepsWhatCannotBeBuilt(t *testing.T) {
	v := func(uid, rv string) queue.Version { return queue.Version{UID: uid, ResourceVersion: rv} }
	tok := wire.Key{Namespace: "default", Type: wire.TypeServiceAccountToken, Name: "web"}
	f := newFixture(t, Config{Desired: keepDesired{
		set:  desired{podKey("queued-old"): v("u-q", "2")},
		keep: []wire.Key{tok},
	}})
	// Queued while the node was away, against a set that has changed since.
	upsert(t, f.hub, "edge-1", podKey("stale"), v("u-s", "1"))
	upsert(t, f.hub, "edge-1", podKey("queued-old"), v("u-q", "1"))

	f.manualInventory = true
	e := f.dial("edge-1", transport.ProtocolWebSocket, true)
	waitFor(t, "connect event", func() bool { return f.obs.has("connected edge-1 websocket") })
	inv, err := wire.NewInventoryMessage(wire.Inventory{Items: []wire.InventoryItem{
		{Key: "default/pod/queued-old", UID: "u-q", ResourceVersion: "2"},
		{Key: "default/serviceaccounttoken/web", UID: "u-w", ResourceVersion: "t1"},
	}})
	must(t, err)
	e.send(inv)
	last := map[string]string{} // resource -> the last operation the edge saw for it
	note := func(m *wire.Message) {
		if m.Route.Operation != wire.OpResponse {
			last[m.Route.Resource] = string(m.Route.Operation) + "@" + m.Header.ResourceVersion
		}
	}
	for {
		m := e.next()
		if m.Route.Operation == wire.OpResponse && m.Header.ParentID == inv.Header.ID {
			break
		}
		note(m)
	}
	waitFor(t, "queue drained", func() bool {
		s, _ := f.hub.QueueStats("edge-1")
		return s.Queued == 0 && s.InFlight == 0
	})
	for len(e.msgs) > 0 {
		note(<-e.msgs)
	}
	// Nothing queued went out before the inventory was read; the resync settled the queue:
	// the stale upsert became a delete (of an object the edge does not hold: harmless), the
	// old version gave way to the desired one, and the kept token was neither deleted nor
	// re-sent.
	want := map[string]string{"default/pod/stale": "delete@", "default/pod/queued-old": "update@2"}
	if !maps.Equal(last, want) {
		t.Fatalf("the edge ends with %v, want %v", last, want)
	}
}
