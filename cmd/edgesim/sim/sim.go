// Package sim runs many hollow edge nodes in one process for scale tests of the cloud hub.
// Each node has its own name, client certificate and connection; it reports an empty
// inventory on every connect, sends keepalives, and acknowledges every downstream message the
// way edgecore does after a commit (operation response, content "OK", parent_msg_id). By
// default nothing is stored: the point is the cloud's load, not the edge's.
//
// With [Config.StoreDir] every node keeps a real edge store (package edge/store) and behaves
// like edgecore's EdgeHub on the downstream path: it reports the store's inventory on connect,
// commits each message with ApplyMessage and acks only after the commit (an error reply if it
// fails). With [Config.Register] each node also registers its Node on connect (and renews its
// Lease with [Config.LeaseInterval]), so a real cloudcore puts it in its graph and syncs pods
// to it. These make end-to-end pod sync benchmarks possible (bench/podsync).
package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Defaults for zero Config fields.
const (
	DefaultPrefix      = "edgesim"
	DefaultConcurrency = 64
	DefaultKeepalive   = transport.DefaultKeepAlivePeriod // 15 s, as edgecore
	DefaultDialTimeout = 10 * time.Second
	DefaultRetryMin    = time.Second
	DefaultRetryMax    = 10 * time.Second
	// DefaultMaxLatencySamples bounds the memory of the ack-latency record (8 bytes each).
	DefaultMaxLatencySamples = 2_000_000
)

// Config configures a simulation. Zero fields take the defaults named.
type Config struct {
	Server     string // host:port of the hub (WebSocket or QUIC port)
	Protocol   string // transport.ProtocolWebSocket (default) or transport.ProtocolQUIC
	ProjectID  string // default transport.DefaultProjectID
	ServerName string // name to verify in the hub's certificate; default the host of Server
	Prefix     string // node i is "<Prefix>-<i>"
	Nodes      int
	// CA signs every node's client certificate; its certificate is also the trusted root for
	// the hub's certificate.
	CA *pki.CA
	// ConnectRate bounds connection attempts per second over all nodes, reconnects included
	// (0: unbounded). Concurrency bounds the dials in progress at once.
	ConnectRate float64
	Concurrency int
	Keepalive   time.Duration
	DialTimeout time.Duration
	// RetryMin and RetryMax bound the reconnect delay, which doubles per failed attempt and is
	// jittered to [d/2, d) so that nodes dropped together do not return together.
	RetryMin, RetryMax time.Duration
	MaxLatencySamples  int
	Options            transport.Options
	Log                *slog.Logger

	// StoreDir, when set, gives node <name> a real edge store in <StoreDir>/<name> (opened
	// by New, closed by Close): its inventory is reported on connect and every downstream
	// message is committed with ApplyMessage before the ack, as edgecore does.
	StoreDir string
	// StoreOptions open each store; the Logger defaults to Log and ReadConns to 1 (the sim
	// reads only the inventory), which keeps a node's memory small.
	StoreOptions store.Options
	// Register sends the node's registration (insert null/node/<name>: a minimal v1.Node,
	// Ready, labelled node-role.kubernetes.io/edge plus NodeLabels) on every connect.
	Register   bool
	NodeLabels map[string]string
	// LeaseInterval, when > 0 and Register is set, renews the node's Lease
	// (update kube-node-lease/lease/<name>) this often, as the kubelet does every 10 s, so the
	// node lifecycle controller keeps the node Ready.
	LeaseInterval time.Duration
	// OnCommit, when set, is called after each downstream object message was acked (with a
	// store: after it committed) with the node, the message's key and the time of the
	// commit. It runs on the node's reading goroutine, so it must be quick.
	OnCommit func(node string, key wire.Key, at time.Time)
	// CountBytes counts the encoded size of every downstream object message per resource
	// type ([Sim.Traffic]). The transport does not expose frame sizes, so each message is
	// re-encoded with wire.Encode: a few µs per message, off by default.
	CountBytes bool
}

func (c Config) withDefaults() (Config, error) {
	if c.Nodes <= 0 {
		return c, errors.New("sim: no nodes")
	}
	if c.CA == nil {
		return c, errors.New("sim: no CA")
	}
	if c.Server == "" {
		return c, errors.New("sim: no server address")
	}
	switch c.Protocol {
	case "":
		c.Protocol = transport.ProtocolWebSocket
	case transport.ProtocolWebSocket, transport.ProtocolQUIC:
	default:
		return c, fmt.Errorf("sim: unknown protocol %q", c.Protocol)
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Keepalive <= 0 {
		c.Keepalive = DefaultKeepalive
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	if c.MaxLatencySamples <= 0 {
		c.MaxLatencySamples = DefaultMaxLatencySamples
	}
	if c.ServerName == "" {
		host, _, err := net.SplitHostPort(c.Server)
		if err != nil {
			return c, fmt.Errorf("sim: server address: %w", err)
		}
		c.ServerName = host
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.StoreOptions.Logger == nil {
		c.StoreOptions.Logger = c.Log
	}
	if c.StoreOptions.ReadConns <= 0 {
		c.StoreOptions.ReadConns = 1
	}
	return c, nil
}

// Sim is a set of hollow edge nodes. Create it with [New], run it with [Sim.Run].
type Sim struct {
	cfg   Config
	nodes []*node
	lim   *rate.Limiter
	sem   chan struct{}

	everConnected atomic.Int64
	connectedNow  atomic.Int64
	received      atomic.Uint64
	acked         atomic.Uint64
	applyErrors   atomic.Uint64
	reconnects    atomic.Uint64
	registered    atomic.Int64

	mu        sync.Mutex
	started   time.Time
	stopped   time.Time
	connects  []time.Duration
	latencies []time.Duration
	errs      map[string]int64
	traffic   map[wire.ResourceType]Traffic
}

type node struct {
	name   string
	dialer transport.Dialer
	db     *store.DB // nil without Config.StoreDir
	// registered is set by the first accepted registration; only the node's session writes it.
	registered bool
}

// Traffic is what the nodes received of one resource type.
type Traffic struct {
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"` // encoded message sizes (the WebSocket frame payloads)
}

// New issues every node's certificate (ECDSA P-256, a few tens of µs each) and returns the
// simulation, not yet running.
func New(cfg Config) (*Sim, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sim{
		cfg:     cfg,
		sem:     make(chan struct{}, cfg.Concurrency),
		errs:    make(map[string]int64),
		traffic: make(map[wire.ResourceType]Traffic),
		lim:     rate.NewLimiter(rate.Inf, 1),
	}
	if cfg.ConnectRate > 0 {
		s.lim = rate.NewLimiter(rate.Limit(cfg.ConnectRate), 1)
	}
	pool := cfg.CA.Pool()
	for i := range cfg.Nodes {
		name := fmt.Sprintf("%s-%d", cfg.Prefix, i)
		kp, err := cfg.CA.IssueClient(transport.NodeCommonNamePrefix+name, transport.NodesOrganization)
		if err != nil {
			return nil, fmt.Errorf("sim: certificate of %s: %w", name, err)
		}
		cert, err := transport.Certificate(kp)
		if err != nil {
			return nil, err
		}
		tlsCfg, err := transport.ClientTLSConfig(cert, pool, cfg.ServerName)
		if err != nil {
			return nil, err
		}
		dc := transport.DialConfig{Addr: cfg.Server, NodeName: name, ProjectID: cfg.ProjectID, TLS: tlsCfg, Options: cfg.Options}
		var d transport.Dialer = transport.WebSocketDialer{Config: dc}
		if cfg.Protocol == transport.ProtocolQUIC {
			d = transport.QUICDialer{Config: dc}
		}
		s.nodes = append(s.nodes, &node{name: name, dialer: d})
	}
	if cfg.StoreDir != "" {
		if err := s.openStores(); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// openStores opens every node's store, a few at a time: each Open runs a quick_check and the
// migrations, which are mostly fsync waits.
func (s *Sim) openStores() error {
	const parallel = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next atomic.Int64
	)
	for range min(parallel, len(s.nodes)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(s.nodes) {
					return
				}
				n := s.nodes[i]
				db, err := store.Open(context.Background(), filepath.Join(s.cfg.StoreDir, n.name), s.cfg.StoreOptions)
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("sim: store of %s: %w", n.name, err))
					mu.Unlock()
					continue
				}
				n.db = db
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close closes the nodes' stores (with Config.StoreDir); call it after Run returned.
func (s *Sim) Close() error {
	var errs []error
	for _, n := range s.nodes {
		if n.db != nil {
			errs = append(errs, n.db.Close())
		}
	}
	return errors.Join(errs...)
}

// Store returns node i's store, nil without Config.StoreDir.
func (s *Sim) Store(i int) *store.DB { return s.nodes[i].db }

// Registered returns how many nodes had a registration accepted by the hub.
func (s *Sim) Registered() int { return int(s.registered.Load()) }

// Traffic returns the downstream object messages received per resource type so far (only
// with Config.CountBytes).
func (s *Sim) Traffic() map[wire.ResourceType]Traffic {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.traffic)
}

func (s *Sim) countTraffic(m *wire.Message) {
	b, err := wire.Encode(m)
	if err != nil {
		s.countError("encode")
		return
	}
	typ := wire.ResourceType("unknown")
	if k, err := wire.ParseResource(m.Route.Resource); err == nil {
		typ = k.Type
	}
	s.mu.Lock()
	t := s.traffic[typ]
	t.Messages++
	t.Bytes += uint64(len(b))
	s.traffic[typ] = t
	s.mu.Unlock()
}

// NodeName returns the name of node i.
func (s *Sim) NodeName(i int) string { return s.nodes[i].name }

// ConnectedNow returns how many nodes have a session.
func (s *Sim) ConnectedNow() int { return int(s.connectedNow.Load()) }

// Acked returns how many acks the nodes have sent.
func (s *Sim) Acked() uint64 { return s.acked.Load() }

// Run connects every node and keeps them connected (reconnecting as needed) until ctx is done,
// then closes every connection and returns once every node's goroutines have stopped.
func (s *Sim) Run(ctx context.Context) {
	s.mu.Lock()
	s.started = time.Now()
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range s.nodes {
		wg.Go(func() { s.runNode(ctx, n) })
	}
	wg.Wait()
	s.mu.Lock()
	s.stopped = time.Now()
	s.mu.Unlock()
}

// Report returns what was measured so far (Run may still be going).
func (s *Sim) Report() Report {
	s.mu.Lock()
	connects := append([]time.Duration(nil), s.connects...)
	lat := append([]time.Duration(nil), s.latencies...)
	errs := make(map[string]int64, len(s.errs))
	for k, v := range s.errs {
		errs[k] = v
	}
	end := s.stopped
	if end.IsZero() {
		end = time.Now()
	}
	elapsed := end.Sub(s.started)
	s.mu.Unlock()

	r := Report{
		Nodes:        len(s.nodes),
		Connected:    int(s.everConnected.Load()),
		ConnectedNow: s.ConnectedNow(),
		Received:     s.received.Load(),
		Acked:        s.acked.Load(),
		Elapsed:      elapsed,
		Reconnects:   s.reconnects.Load(),
		Errors:       errs,
		AckSamples:   len(lat),
		Registered:   s.Registered(),
		ApplyErrors:  s.applyErrors.Load(),
	}
	if s.cfg.CountBytes {
		r.Traffic = make(map[string]Traffic)
		for k, v := range s.Traffic() {
			r.Traffic[string(k)] = v
		}
	}
	r.Failed = r.Nodes - r.Connected
	r.ConnectP50, r.ConnectP99, r.ConnectMax = summarize(connects)
	r.AckLatencyP50, r.AckLatencyP99, _ = summarize(lat)
	if elapsed > 0 {
		r.AckedPerSecond = float64(r.Acked) / elapsed.Seconds()
	}
	return r
}

func (s *Sim) countError(kind string) {
	s.mu.Lock()
	s.errs[kind]++
	s.mu.Unlock()
}

func (s *Sim) recordConnect(d time.Duration) {
	s.mu.Lock()
	s.connects = append(s.connects, d)
	s.mu.Unlock()
}

func (s *Sim) recordLatency(d time.Duration) {
	s.mu.Lock()
	if len(s.latencies) < s.cfg.MaxLatencySamples {
		s.latencies = append(s.latencies, d)
	}
	s.mu.Unlock()
}

// retryDelay is the jittered delay before attempt number attempt (0-based) of a reconnect.
func (s *Sim) retryDelay(attempt int) time.Duration {
	d := s.cfg.RetryMin
	for range min(attempt, 20) {
		d *= 2
		if d >= s.cfg.RetryMax {
			d = s.cfg.RetryMax
			break
		}
	}
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *Sim) runNode(ctx context.Context, n *node) {
	connected := false
	failures := 0
	var delay time.Duration
	if r := s.cfg.ConnectRate; r > 0 {
		// Jittered start: spread the first attempts over the time the rate allows.
		delay = rand.N(time.Duration(float64(len(s.nodes))/r*float64(time.Second)) + 1)
	}
	for {
		if delay > 0 && !sleep(ctx, delay) {
			return
		}
		c, err := s.dial(ctx, n)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, transport.ErrRefused) {
				s.countError("dial-refused")
			} else {
				s.countError("dial")
			}
			delay = s.retryDelay(failures)
			failures++
			continue
		}
		failures = 0
		if connected {
			s.reconnects.Add(1)
		} else {
			connected = true
			s.everConnected.Add(1)
		}
		s.connectedNow.Add(1)
		kind := s.session(ctx, n, c)
		s.connectedNow.Add(-1)
		if ctx.Err() != nil {
			return
		}
		s.countError(kind)
		s.cfg.Log.Debug("session ended", "node", n.name, "kind", kind)
		delay = s.retryDelay(0)
	}
}

// dial waits for the connect rate and a concurrency slot, then connects n.
func (s *Sim) dial(ctx context.Context, n *node) (transport.Conn, error) {
	if err := s.lim.Wait(ctx); err != nil {
		return nil, err
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.sem }()
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	t0 := time.Now()
	c, err := n.dialer.Dial(dctx)
	if err != nil {
		return nil, err
	}
	s.recordConnect(time.Since(t0))
	return c, nil
}

// session serves one connection until it fails or ctx is done and returns the kind of
// error that ended it.
func (s *Sim) session(ctx context.Context, n *node, c transport.Conn) string {
	// I/O runs on a context that is never cancelled: a cancelled Read would close the
	// connection with the transport's reason; ours ("edgesim stopping") is given by Close.
	io := context.WithoutCancel(ctx)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(sctx, func() { _ = c.Close("edgesim stopping") })
	defer stop()
	defer c.Close("edgesim: session over") // releases a failed connection; no-op if closed

	inventory := wire.Inventory{}
	if n.db != nil {
		var err error
		if inventory, err = n.db.Inventory(sctx); err != nil {
			_ = c.Close("edgesim: inventory")
			return "inventory"
		}
	}
	inv, err := wire.NewInventoryMessage(inventory)
	if err != nil {
		_ = c.Close("edgesim: inventory")
		return "inventory"
	}
	if err := c.Write(io, inv); err != nil {
		_ = c.Close("edgesim: write failed")
		return "write"
	}
	var regID string
	if s.cfg.Register {
		reg, err := s.registration(n.name)
		if err != nil {
			_ = c.Close("edgesim: registration")
			return "register"
		}
		regID = reg.Header.ID
		if err := c.Write(io, reg); err != nil {
			_ = c.Close("edgesim: write failed")
			return "write"
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before wg.Wait: stops the keepalive and lease loops
	s.every(sctx, &wg, s.cfg.Keepalive, func() error { return c.Write(io, wire.NewKeepalive()) })
	if s.cfg.Register && s.cfg.LeaseInterval > 0 {
		s.every(sctx, &wg, s.cfg.LeaseInterval, func() error {
			m, err := leaseMessage(n.name, s.cfg.LeaseInterval, time.Now())
			if err != nil {
				return err
			}
			return c.Write(io, m)
		})
	}
	for {
		m, err := c.Read(io)
		if err != nil {
			if ce, ok := errors.AsType[*transport.CloseError](err); ok && ce.Remote {
				return "closed-by-hub"
			}
			return "read"
		}
		if m.Route.Operation == wire.OpResponse || m.Route.Operation == wire.OpError {
			switch {
			case m.Header.ParentID == inv.Header.ID && m.Route.Operation == wire.OpError:
				s.countError("inventory-refused")
			case regID != "" && m.Header.ParentID == regID && m.Route.Operation == wire.OpError:
				s.countError("register-refused")
				s.cfg.Log.Warn("registration refused", "node", n.name, "reason", string(m.Content))
			case regID != "" && m.Header.ParentID == regID && !n.registered:
				n.registered = true
				s.registered.Add(1)
			}
			continue // an answer to our inventory, registration or lease; the hub does not answer keepalives
		}
		if m.IsKeepalive() {
			continue
		}
		s.received.Add(1)
		if s.cfg.CountBytes {
			s.countTraffic(m)
		}
		reply := m.Ack()
		if n.db != nil {
			if err := n.db.ApplyMessage(sctx, m); err != nil {
				if sctx.Err() != nil {
					return "stopping" // not a verdict on the message: the hub resends it
				}
				s.applyErrors.Add(1)
				s.countError("apply")
				s.cfg.Log.Warn("could not apply downstream message", "node", n.name, "resource", m.Route.Resource, "err", err)
				reply = m.Error(err.Error())
			}
		}
		committed := time.Now()
		if err := c.Write(io, reply); err != nil {
			_ = c.Close("edgesim: write failed")
			return "write"
		}
		if reply.Route.Operation == wire.OpError {
			continue
		}
		s.acked.Add(1)
		s.recordLatency(time.Since(time.UnixMilli(m.Header.Timestamp)))
		if s.cfg.OnCommit != nil {
			if k, err := wire.ParseResource(m.Route.Resource); err == nil {
				s.cfg.OnCommit(n.name, k, committed)
			}
		}
	}
}

// every runs fn every interval on a goroutine of wg until ctx is done or fn fails (the
// session's reader then sees the connection fail too).
func (s *Sim) every(ctx context.Context, wg *sync.WaitGroup, interval time.Duration, fn func() error) {
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := fn(); err != nil {
				return
			}
		}
	})
}
