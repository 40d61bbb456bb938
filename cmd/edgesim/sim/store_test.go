package sim

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/cloud/hub/queue"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

// recordingUpstream answers every upstream message "OK" and remembers, per node, the
// resources of the messages and the content of the registration.
type recordingUpstream struct {
	mu   sync.Mutex
	seen map[string]map[string]json.RawMessage // node → resource → last content
}

func (u *recordingUpstream) Handle(_ context.Context, node string, m *wire.Message) (json.RawMessage, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.seen[node] == nil {
		u.seen[node] = map[string]json.RawMessage{}
	}
	u.seen[node][string(m.Route.Operation)+" "+m.Route.Resource] = m.Content
	return json.RawMessage(`"OK"`), nil
}

func (u *recordingUpstream) got(node, what string) (json.RawMessage, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	c, ok := u.seen[node][what]
	return c, ok
}

type commits struct {
	mu   sync.Mutex
	seen map[string]int // "<node> <key>" → commits
}

func (c *commits) record(node string, k wire.Key, _ time.Time) {
	c.mu.Lock()
	c.seen[node+" "+k.String()]++
	c.mu.Unlock()
}

func (c *commits) count(node string, k wire.Key) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[node+" "+k.String()]
}

type testHub struct {
	h    *hub.Hub
	addr string
	ca   *pki.CA
}

func startHub(t *testing.T, up hub.Upstream) *testHub {
	t.Helper()
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "edgesim-test-ca"})
	must(t, err)
	srvKP, err := ca.IssueServer("cloudcore", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	must(t, err)
	srvCert, err := transport.Certificate(srvKP)
	must(t, err)
	serverTLS, err := transport.ServerTLSConfig(srvCert, ca.Pool())
	must(t, err)
	h, err := hub.New(hub.Config{Upstream: up, Desired: emptyDesired{}}, nil)
	must(t, err)
	srv, err := transport.ListenWebSocket(transport.ServerConfig{Addr: "127.0.0.1:0", TLS: serverTLS, Handler: h.ServeConn})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, srv) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub Run: %v", err)
		}
	})
	return &testHub{h: h, addr: srv.Addr().String(), ca: ca}
}

// runSim starts s and returns a function that stops it and closes its stores.
func runSim(t *testing.T, s *Sim) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func podMessage(k wire.Key, uid, rv string) *wire.Message {
	content := `{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"` + k.Namespace + `","name":"` + k.Name +
		`","uid":"` + uid + `","resourceVersion":"` + rv + `"},"spec":{"nodeName":"x"}}`
	m := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: wire.OpInsert, Resource: k.String()},
		json.RawMessage(content))
	m.Header.ResourceVersion = rv
	return m
}

// TestStoreRegisterAndCommitHook runs nodes with real stores and registration against an
// in-process hub: each registers and renews its Lease, commits a pod before acking it (the
// hook and the byte count see it), answers a message its store refuses with an error, and
// reports its store's inventory on the next connect (the hub's resync then deletes the pod).
func TestStoreRegisterAndCommitHook(t *testing.T) {
	const n = 3
	up := &recordingUpstream{seen: map[string]map[string]json.RawMessage{}}
	th := startHub(t, up)
	dir := t.TempDir()
	got := &commits{seen: map[string]int{}}
	cfg := Config{
		Server: th.addr, Nodes: n, CA: th.ca, Prefix: "podsync", StoreDir: dir,
		Register: true, LeaseInterval: 50 * time.Millisecond, NodeLabels: map[string]string{"skerry.io/bench": "test"},
		OnCommit: got.record, CountBytes: true,
	}
	s, err := New(cfg)
	must(t, err)
	stop := runSim(t, s)

	waitFor(t, "all nodes registered", func() bool { return s.ConnectedNow() == n && s.Registered() == n })
	for i := range n {
		name := s.NodeName(i)
		reg, ok := up.got(name, "insert null/node/"+name)
		if !ok {
			t.Fatalf("no registration from %s", name)
		}
		var node struct {
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Status struct {
				Conditions []struct{ Type, Status string } `json:"conditions"`
			} `json:"status"`
		}
		must(t, json.Unmarshal(reg, &node))
		if _, edge := node.Metadata.Labels[EdgeLabel]; !edge || node.Metadata.Name != name || node.Metadata.Labels["skerry.io/bench"] != "test" {
			t.Errorf("registration of %s = %s, want name, edge label and the extra label", name, reg)
		}
		if len(node.Status.Conditions) != 1 || node.Status.Conditions[0].Type != "Ready" || node.Status.Conditions[0].Status != "True" {
			t.Errorf("registration of %s has conditions %+v, want Ready=True", name, node.Status.Conditions)
		}
		waitFor(t, "a lease from "+name, func() bool {
			_, ok := up.got(name, "update kube-node-lease/lease/"+name)
			return ok
		})
	}

	key := wire.Key{Namespace: "default", Type: wire.TypePod, Name: "web-1"}
	msg := podMessage(key, "u-1", "7")
	for i := range n {
		must(t, th.h.Upsert(s.NodeName(i), key, queue.Version{UID: "u-1", ResourceVersion: "7"}, podMessage(key, "u-1", "7")))
	}
	waitFor(t, "every node committed the pod", func() bool {
		for i := range n {
			if got.count(s.NodeName(i), key) != 1 {
				return false
			}
		}
		return true
	})
	for i := range n {
		obj, ok, err := s.Store(i).Get(context.Background(), key)
		must(t, err)
		if !ok || obj.UID != "u-1" || obj.ResourceVersion != "7" {
			t.Errorf("store of %s holds %+v (ok %v), want the pod u-1 at 7", s.NodeName(i), obj, ok)
		}
	}
	enc, err := wire.Encode(msg)
	must(t, err)
	if tr := s.Traffic()[wire.TypePod]; tr.Messages != n || tr.Bytes < uint64(n*(len(enc)-64)) || tr.Bytes > uint64(n*(len(enc)+64)) {
		t.Errorf("pod traffic = %+v, want %d messages of about %d bytes", tr, n, len(enc))
	}

	// Content that is not a JSON object: the store refuses it, the node answers with an error.
	bad := wire.Key{Namespace: "default", Type: wire.TypeConfigMap, Name: "bad"}
	badMsg := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: wire.OpInsert, Resource: bad.String()},
		json.RawMessage(`"not an object"`))
	must(t, th.h.Upsert(s.NodeName(0), bad, queue.Version{UID: "u-bad", ResourceVersion: "1"}, badMsg))
	waitFor(t, "the refused message", func() bool { return s.Report().ApplyErrors > 0 })
	if got.count(s.NodeName(0), bad) != 0 {
		t.Errorf("commit hook called for a refused message")
	}
	if _, ok, _ := s.Store(0).Get(context.Background(), bad); ok {
		t.Errorf("refused message stored")
	}
	stop()

	// The same stores again: the inventory names the pod, the hub's desired set is empty, so
	// the resync deletes it.
	cfg.OnCommit, cfg.Register = got.record, false
	s2, err := New(cfg)
	must(t, err)
	runSim(t, s2)
	waitFor(t, "the pod deleted on every node after the resync", func() bool {
		for i := range n {
			if got.count(s2.NodeName(i), key) != 2 {
				return false
			}
		}
		return true
	})
	for i := range n {
		if _, ok, err := s2.Store(i).Get(context.Background(), key); err != nil || ok {
			t.Errorf("store of %s still holds the pod (err %v)", s2.NodeName(i), err)
		}
	}
}
