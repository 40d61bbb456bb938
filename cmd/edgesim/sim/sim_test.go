package sim

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/cloud/hub/queue"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

func TestPercentileIsNearestRank(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1) // 1..100 ms
	}
	for _, tc := range []struct {
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{nil, 50, 0},
		{[]time.Duration{ms(7)}, 50, ms(7)},
		{[]time.Duration{ms(7)}, 99, ms(7)},
		{[]time.Duration{ms(1), ms(2)}, 50, ms(1)},
		{[]time.Duration{ms(1), ms(2), ms(3)}, 50, ms(2)},
		{hundred, 50, ms(50)},
		{hundred, 99, ms(99)},
		{hundred, 100, ms(100)},
		{hundred, 0.1, ms(1)},
	} {
		if got := Percentile(tc.samples, tc.p); got != tc.want {
			t.Errorf("Percentile(%d samples, %v) = %v, want %v", len(tc.samples), tc.p, got, tc.want)
		}
	}
}

func TestSummarizeSortsAndTakesMax(t *testing.T) {
	p50, p99, mx := summarize([]time.Duration{5, 1, 4, 2, 3})
	if p50 != 3 || p99 != 5 || mx != 5 {
		t.Fatalf("summarize = %v %v %v, want 3 5 5", p50, p99, mx)
	}
}

type noUpstream struct{}

func (noUpstream) Handle(context.Context, string, *wire.Message) (json.RawMessage, error) {
	return nil, nil
}

type emptyDesired struct{}

func (emptyDesired) Desired(context.Context, string) (map[wire.Key]hub.Object, error) {
	return nil, nil
}

type connectCounter struct {
	mu    sync.Mutex
	nodes map[string]bool
}

func (c *connectCounter) NodeConnected(node string, _ hub.SessionInfo) {
	c.mu.Lock()
	c.nodes[node] = true
	c.mu.Unlock()
}

func (c *connectCounter) NodeDisconnected(node, _ string) {
	c.mu.Lock()
	delete(c.nodes, node)
	c.mu.Unlock()
}

func (c *connectCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.nodes)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTenNodesGetAndAckAFanOut runs 10 simulated nodes against an in-process hub on
// 127.0.0.1: all connect, one object upserted for every node reaches every node, and every
// node's ack reaches the hub's queue.
func TestTenNodesGetAndAckAFanOut(t *testing.T) {
	for _, protocol := range []string{transport.ProtocolWebSocket, transport.ProtocolQUIC} {
		t.Run(protocol, func(t *testing.T) {
			const n = 10
			ca, err := pki.NewCA(pki.CAConfig{CommonName: "edgesim-test-ca"})
			must(t, err)
			srvKP, err := ca.IssueServer("cloudcore", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
			must(t, err)
			srvCert, err := transport.Certificate(srvKP)
			must(t, err)
			serverTLS, err := transport.ServerTLSConfig(srvCert, ca.Pool())
			must(t, err)
			obs := &connectCounter{nodes: map[string]bool{}}
			h, err := hub.New(hub.Config{Upstream: noUpstream{}, Desired: emptyDesired{}, Observer: obs}, nil)
			must(t, err)
			var srv transport.Server
			if protocol == transport.ProtocolQUIC {
				srv, err = transport.ListenQUIC(transport.ServerConfig{Addr: "127.0.0.1:0", TLS: serverTLS, Handler: h.ServeConn})
			} else {
				srv, err = transport.ListenWebSocket(transport.ServerConfig{Addr: "127.0.0.1:0", TLS: serverTLS, Handler: h.ServeConn})
			}
			must(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			hubDone := make(chan error, 1)
			go func() { hubDone <- h.Run(ctx, srv) }()

			s, err := New(Config{Server: srv.Addr().String(), Protocol: protocol, Nodes: n, CA: ca, Prefix: "sim"})
			must(t, err)
			simCtx, stopSim := context.WithCancel(context.Background())
			simDone := make(chan struct{})
			go func() { s.Run(simCtx); close(simDone) }()
			t.Cleanup(func() {
				stopSim()
				<-simDone
				cancel()
				if err := <-hubDone; err != nil {
					t.Errorf("hub Run: %v", err)
				}
			})

			waitFor(t, "all nodes connected", func() bool { return s.ConnectedNow() == n && obs.count() == n })
			key := wire.Key{Namespace: "default", Type: wire.TypeConfigMap, Name: "fanout"}
			v := queue.Version{UID: "u-1", ResourceVersion: "1"}
			for i := range n {
				m := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: key.String()},
					json.RawMessage(`{"metadata":{"name":"fanout","uid":"u-1","resourceVersion":"1"}}`))
				must(t, h.Upsert(s.NodeName(i), key, v, m))
			}
			waitFor(t, "every node's queue acked", func() bool {
				for i := range n {
					if st, ok := h.QueueStats(s.NodeName(i)); !ok || st.Acked != 1 {
						return false
					}
				}
				return true
			})
			r := s.Report()
			if r.Connected != n || r.Failed != 0 || r.Received != n || r.Acked != n || r.AckSamples != n {
				t.Errorf("report = %+v, want %d connected, %d received and acked", r, n, n)
			}
			if r.AckLatencyP99 <= 0 || r.AckLatencyP99 > 20*time.Second {
				t.Errorf("ack latency p99 = %v, want within (0, 20s]", r.AckLatencyP99)
			}
			if len(r.Errors) != 0 {
				t.Errorf("errors = %v, want none", r.Errors)
			}
			if testing.Verbose() {
				r.WriteText(testWriter{t})
			}
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
