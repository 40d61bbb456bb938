package app

import (
	"context"
	"encoding/json"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skerry-io/skerry/edge/config"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

// fakeCloud is a minimal cloudcore for edgecore tests: it acknowledges the inventory, records
// every other upstream message (keepalives and replies excepted) and acknowledges it while ack
// is true. serials receives the serial number of each connection's client certificate.
type fakeCloud struct {
	ca       *pki.CA
	addr     string
	ack      atomic.Bool
	upstream chan *wire.Message
	serials  chan *big.Int

	mu    sync.Mutex
	conns map[transport.Conn]bool
}

// dropConnections closes every open connection, as a restarting cloud would.
func (fc *fakeCloud) dropConnections() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for c := range fc.conns {
		_ = c.Close("test cloud drops the connection")
	}
}

func newFakeCloud(t *testing.T, ca *pki.CA, ack bool) *fakeCloud {
	t.Helper()
	serverKP, err := ca.IssueServer("cloudcore", nil, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := transport.Certificate(serverKP)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := transport.ServerTLSConfig(serverCert, ca.Pool())
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeCloud{ca: ca, upstream: make(chan *wire.Message, 1024), serials: make(chan *big.Int, 64),
		conns: map[transport.Conn]bool{}}
	fc.ack.Store(ack)
	handler := func(ctx context.Context, c transport.Conn) {
		fc.mu.Lock()
		fc.conns[c] = true
		fc.mu.Unlock()
		defer func() {
			fc.mu.Lock()
			delete(fc.conns, c)
			fc.mu.Unlock()
		}()
		select {
		case fc.serials <- c.PeerCertificate().SerialNumber:
		default:
		}
		for {
			m, err := c.Read(ctx)
			if err != nil {
				return
			}
			switch {
			case wire.IsInventory(m):
				if err := c.Write(ctx, m.Ack()); err != nil {
					return
				}
			case m.IsKeepalive(), m.Route.Operation == wire.OpResponse, m.Route.Operation == wire.OpError:
			case isNodeReport(m):
				// The node's own registration, status and heartbeat: acknowledged, not
				// part of what these tests count.
				if err := c.Write(ctx, m.Ack()); err != nil {
					return
				}
			default:
				fc.upstream <- m
				if fc.ack.Load() {
					if err := c.Write(ctx, m.Ack()); err != nil {
						return
					}
				}
			}
		}
	}
	srv, err := transport.ListenWebSocket(transport.ServerConfig{Addr: "127.0.0.1:0", TLS: serverTLS, Handler: handler})
	if err != nil {
		t.Fatal(err)
	}
	fc.addr = srv.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-served })
	return fc
}

// startEdge runs edgecore in the background; stop cancels it and checks that Run returns nil.
func startEdge(t *testing.T, cfg *config.EdgeCore) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, quiet()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run after cancel = %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// upstreamMsg builds an edge-form upstream message with a JSON string as content.
func upstreamMsg(resource, content string) *wire.Message {
	return wire.NewMessage(wire.Route{Source: "edged", Group: wire.GroupResource, Operation: wire.OpUpdate,
		Resource: resource}, json.RawMessage(`"`+content+`"`))
}

// outboxContents opens the store (Run may hold it open too: readers and the single writer
// of WAL mode coexist) and returns the pending entries as message id → content.
func outboxContents(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dataDir, store.Options{Logger: quiet()})
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	defer func() { _ = db.Close() }()
	es, err := db.Outbox().Next(ctx, 1000)
	if err != nil {
		t.Fatalf("reading the outbox: %v", err)
	}
	out := make(map[string]string, len(es))
	for _, e := range es {
		if !isNodeReport(e.Message) {
			out[e.Message.Header.ID] = string(e.Message.Content)
		}
	}
	return out
}

// isNodeReport tells the node status reporter's registration, status and heartbeat apart
// from what the tests enqueue themselves.
func isNodeReport(m *wire.Message) bool {
	k, err := wire.ParseResource(m.Route.Resource)
	return err == nil && (k.Type == wire.TypeNode || k.Type == wire.TypeNodeStatus || k.Type == wire.TypeLease)
}

// fillOutbox enqueues, as a stopped (offline) edgecore would have left them: two FIFO events
// on the same key, a status updated three times and another status. It returns the entries
// the cloud must receive, message id → content.
func fillOutbox(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dataDir, store.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ob := db.Outbox()
	want := map[string]string{}
	for _, in := range []struct {
		resource, content string
		class             store.Class
		last              bool
	}{
		{"default/event/e-1", "event-1", store.FIFO, true},
		{"default/podstatus/web-1", "web-1 v1", store.Coalesced, false},
		{"default/event/e-1", "event-2", store.FIFO, true},
		{"default/podstatus/web-2", "web-2 v1", store.Coalesced, true},
		{"default/podstatus/web-1", "web-1 v2", store.Coalesced, false},
		{"default/podstatus/web-1", "web-1 v3", store.Coalesced, true},
	} {
		m := upstreamMsg(in.resource, in.content)
		if _, err := ob.Enqueue(ctx, m, in.class); err != nil {
			t.Fatal(err)
		}
		if in.last {
			want[m.Header.ID] = `"` + in.content + `"`
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := outboxContents(t, dataDir); !sameMap(got, want) {
		t.Fatalf("outbox before start = %v, want %v", got, want)
	}
	return want
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// receiveAll collects upstream messages until every entry of want has arrived (by message
// id, with its content). It fails on content not in want (an outdated coalesced version) and
// returns how often each id arrived.
func receiveAll(t *testing.T, fc *fakeCloud, want map[string]string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	deadline := time.After(15 * time.Second)
	for len(seen) < len(want) {
		select {
		case m := <-fc.upstream:
			content, ok := want[m.Header.ID]
			if !ok || content != string(m.Content) {
				t.Fatalf("cloud received %s %s %s, not a pending entry (want %v)", m.Header.ID, m.Route.Resource, m.Content, want)
			}
			seen[m.Header.ID]++
		case <-deadline:
			t.Fatalf("cloud received %v of %v", seen, want)
		}
	}
	return seen
}

// waitOutboxEmpty polls the outbox until it is empty.
func waitOutboxEmpty(t *testing.T, dataDir string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := outboxContents(t, dataDir)
		if len(got) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRestartDeliversPendingOutbox: edgecore stopped while offline left entries in its
// outbox. On the next start it sends each of them, coalesced keys once with their newest
// content, and removes them as the cloud acknowledges them.
func TestRestartDeliversPendingOutbox(t *testing.T) {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "test-ca"})
	if err != nil {
		t.Fatal(err)
	}
	fc := newFakeCloud(t, ca, true)
	cfg := testConfig(t, fc.addr)
	writeCreds(t, cfg.DataDir, ca)
	want := fillOutbox(t, cfg.DataDir)

	stop := startEdge(t, cfg)
	seen := receiveAll(t, fc, want)
	waitOutboxEmpty(t, cfg.DataDir)
	stop()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("entry %s (%s) received %d times, want once", id, want[id], n)
		}
	}
	select {
	case m := <-fc.upstream:
		t.Errorf("unexpected extra upstream message %s %s %s", m.Header.ID, m.Route.Resource, m.Content)
	default:
	}
	if got := outboxContents(t, cfg.DataDir); len(got) != 0 {
		t.Fatalf("outbox after stop = %v, want empty", got)
	}
}

// TestUnackedOutboxSurvivesRestart: the cloud receives the entries but does not acknowledge
// them; edgecore is stopped and started again. The entries are still in the outbox, are sent
// again with the same message ids (at-least-once; the cloud can deduplicate by id) and are
// removed only once the cloud acknowledges them.
func TestUnackedOutboxSurvivesRestart(t *testing.T) {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "test-ca"})
	if err != nil {
		t.Fatal(err)
	}
	fc := newFakeCloud(t, ca, false)
	cfg := testConfig(t, fc.addr)
	writeCreds(t, cfg.DataDir, ca)
	want := fillOutbox(t, cfg.DataDir)

	stop := startEdge(t, cfg)
	receiveAll(t, fc, want)
	// Still unacknowledged while the edge runs.
	if got := outboxContents(t, cfg.DataDir); !sameMap(got, want) {
		t.Fatalf("outbox while unacknowledged = %v, want %v", got, want)
	}
	stop()
	if got := outboxContents(t, cfg.DataDir); !sameMap(got, want) {
		t.Fatalf("outbox after stop without acks = %v, want %v", got, want)
	}

	// Drop anything left over from the first run, then acknowledge from now on.
	for drained := false; !drained; {
		select {
		case <-fc.upstream:
		default:
			drained = true
		}
	}
	fc.ack.Store(true)
	stop = startEdge(t, cfg)
	receiveAll(t, fc, want)
	waitOutboxEmpty(t, cfg.DataDir)
	stop()
	if got := outboxContents(t, cfg.DataDir); len(got) != 0 {
		t.Fatalf("outbox after acks = %v, want empty", got)
	}
}
