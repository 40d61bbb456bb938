package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/skerry-io/skerry/cloud/hub/queue"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Defaults for zero Config fields.
const (
	// DefaultKeepaliveTimeout is KubeEdge's: the edge pings every 15 s, the cloud drops a
	// session silent for 30 s.
	DefaultKeepaliveTimeout = 30 * time.Second
	// DefaultMaxNodes is KubeEdge's cloudhub nodeLimit.
	DefaultMaxNodes = 1000
	// DefaultSendRate and DefaultSendBurst let a resync of a few hundred objects go out at
	// once while one busy node cannot saturate the hub.
	DefaultSendRate  = 200
	DefaultSendBurst = 500
	// DefaultUpstreamBuffer is how many upstream messages of one node may wait for Handle
	// before the hub stops reading from that node (TCP back-pressure).
	DefaultUpstreamBuffer = 64
)

// Close reasons the hub gives the edge.
const (
	ReasonReplaced = "replaced by a new connection"
	ReasonShutdown = "cloudhub shutting down"
)

// ErrNodeLimit is the reason a connection beyond Config.MaxNodes is refused.
var ErrNodeLimit = errors.New("hub: node limit reached")

// SessionInfo describes a connected session.
type SessionInfo struct {
	Protocol    string // transport.ProtocolWebSocket or transport.ProtocolQUIC
	ProjectID   string
	RemoteAddr  net.Addr
	ConnectedAt time.Time
}

// SessionObserver learns when nodes connect and disconnect. Calls for one node are ordered
// (a replaced session's NodeDisconnected comes before its successor's NodeConnected) and are
// made from the session's goroutine, so they must return quickly.
type SessionObserver interface {
	NodeConnected(node string, info SessionInfo)
	NodeDisconnected(node string, reason string)
}

// Upstream receives what the edge sends that is not an answer, keepalive or inventory. When
// Handle returns a nil error the hub answers msg with a response: its content is reply, or
// the ack "OK" when reply is nil. Handle must therefore return nil only after it has done (or
// durably accepted) the work, and must return promptly when ctx is done (a replacing session
// waits for it). An error wrapping [ErrTransient] gets no answer, so the edge's outbox sends
// the message again; any other error is answered with its text, and the edge drops the
// message. Resources arrive as the edge wrote them (edge form). msg must not be retained after
// Handle returns.
type Upstream interface {
	Handle(ctx context.Context, node string, msg *wire.Message) (reply json.RawMessage, err error)
}

// ErrTransient marks an upstream failure worth retrying (the API server unreachable, say):
// the hub leaves the message unanswered instead of refusing it.
var ErrTransient = errors.New("hub: transient failure, the edge should retry")

// Object is one object of a node's desired set.
type Object struct {
	// Keep says the source could not build the object now (it will queue it later itself):
	// the resync leaves whatever the edge holds under this key, sending neither an upsert
	// nor a delete. Version and Message are unused then.
	Keep    bool
	Version queue.Version
	// Message builds the message that gives the edge this object's current version. It is
	// called once per send decision and must return a message with a fresh id each time.
	Message func() (*wire.Message, error)
}

// DesiredSource gives a node's desired set: every object the node should hold, by key.
type DesiredSource interface {
	Desired(ctx context.Context, node string) (map[wire.Key]Object, error)
}

// NodeLocker is an optional interface of a [DesiredSource] that also queues changes itself
// ([Hub.Upsert], [Hub.Delete]). A resync holds the node's lock from Desired until the
// difference is queued, so a change queued concurrently cannot be overtaken by the older
// version the resync read.
type NodeLocker interface {
	LockNode(node string) (unlock func())
}

// Config configures a [Hub]. Zero fields take the defaults named.
type Config struct {
	// Upstream handles upstream messages (required).
	Upstream Upstream
	// Desired answers resyncs. Without it inventories are answered with an error.
	Desired DesiredSource
	// Observer learns of connects and disconnects (optional).
	Observer SessionObserver
	// MaxNodes bounds the nodes connected at once (default DefaultMaxNodes).
	MaxNodes int
	// KeepaliveTimeout closes a session silent this long (default DefaultKeepaliveTimeout).
	KeepaliveTimeout time.Duration
	// SendRate (messages per second) and SendBurst bound each node's downstream messages
	// (defaults DefaultSendRate and DefaultSendBurst).
	SendRate  float64
	SendBurst int
	// UpstreamBuffer is the per-node backlog of upstream messages (default
	// DefaultUpstreamBuffer).
	UpstreamBuffer int
	// Queue configures every node's queue.
	Queue queue.Options
}

func (c Config) withDefaults() Config {
	if c.MaxNodes <= 0 {
		c.MaxNodes = DefaultMaxNodes
	}
	if c.KeepaliveTimeout <= 0 {
		c.KeepaliveTimeout = DefaultKeepaliveTimeout
	}
	if c.SendRate <= 0 {
		c.SendRate = DefaultSendRate
	}
	if c.SendBurst <= 0 {
		c.SendBurst = DefaultSendBurst
	}
	if c.UpstreamBuffer <= 0 {
		c.UpstreamBuffer = DefaultUpstreamBuffer
	}
	return c
}

// Hub is CloudHub's session manager. Create it with [New], give [Hub.ServeConn] to the
// transport servers as their Handler, and serve them with [Hub.Run].
type Hub struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	nodes    map[string]*nodeState
	sessions map[string]*session // the current session of each connected node
	closed   bool
}

// nodeState is what a node keeps across sessions.
type nodeState struct {
	q   *queue.NodeQueue
	lim *rate.Limiter
}

// New returns a hub. log may be nil.
func New(cfg Config, log *slog.Logger) (*Hub, error) {
	if cfg.Upstream == nil {
		return nil, errors.New("hub: no Upstream")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{
		cfg:      cfg.withDefaults(),
		log:      log,
		nodes:    make(map[string]*nodeState),
		sessions: make(map[string]*session),
	}, nil
}

// Run serves the servers until ctx is done or one of them fails, then stops them all, waits
// for every session to end and closes the node queues. Each server's handler must be
// [Hub.ServeConn].
func (h *Hub) Run(ctx context.Context, servers ...transport.Server) error {
	if len(servers) == 0 {
		return errors.New("hub: no servers")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			err := s.Serve(ctx)
			if err != nil {
				h.log.Error("transport server failed", "addr", s.Addr(), "err", err)
			}
			cancel() // one server failing stops the hub: a half-served cloud hides the failure
			errc <- err
		}()
	}
	var errs []error
	for range servers {
		errs = append(errs, <-errc)
	}
	// Serve returned only after every handler (and so every session) returned.
	h.mu.Lock()
	h.closed = true
	for _, st := range h.nodes {
		st.q.Close()
	}
	h.mu.Unlock()
	return errors.Join(errs...)
}

// Upsert queues msg, which gives node the object key at version v. A newer upsert of the same
// key replaces one not yet sent. A resource in cloud form (node/<node>/...) is converted to
// edge form.
func (h *Hub) Upsert(node string, key wire.Key, v queue.Version, msg *wire.Message) error {
	msg, err := edgeForm(node, msg)
	if err != nil {
		return err
	}
	st, err := h.node(node)
	if err != nil {
		return err
	}
	return st.q.Upsert(key, v, msg)
}

// Delete queues msg, which removes the object key (uid) from node. See [NewDeleteMessage].
func (h *Hub) Delete(node string, key wire.Key, uid string, msg *wire.Message) error {
	msg, err := edgeForm(node, msg)
	if err != nil {
		return err
	}
	st, err := h.node(node)
	if err != nil {
		return err
	}
	return st.q.Delete(key, uid, msg)
}

// QueueStats returns the counters of node's queue, and false if the node has none.
func (h *Hub) QueueStats(node string) (queue.Stats, bool) {
	h.mu.Lock()
	st := h.nodes[node]
	h.mu.Unlock()
	if st == nil {
		return queue.Stats{}, false
	}
	return st.q.Stats(), true
}

// Connected reports whether node has a session.
func (h *Hub) Connected(node string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[node] != nil
}

// node returns node's state, creating it on first use. Queues are kept for the hub's
// lifetime: nodes are few and long-lived, and a queue must survive reconnects.
func (h *Hub) node(node string) (*nodeState, error) {
	if node == "" {
		return nil, errors.New("hub: empty node name")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("hub: node %q: %w", node, queue.ErrClosed)
	}
	st := h.nodes[node]
	if st == nil {
		st = &nodeState{
			q:   queue.New(h.cfg.Queue),
			lim: rate.NewLimiter(rate.Limit(h.cfg.SendRate), h.cfg.SendBurst),
		}
		h.nodes[node] = st
	}
	return st, nil
}

// edgeForm returns msg with its resource in edge form: the hub strips node/<node>/ on the
// way down. The queue and its sender share the message, so a converted one is a copy.
func edgeForm(node string, msg *wire.Message) (*wire.Message, error) {
	if msg == nil {
		return nil, errors.New("hub: nil message")
	}
	if !strings.HasPrefix(msg.Route.Resource, "node/") {
		return msg, nil
	}
	res, err := wire.ToEdge(msg.Route.Resource, node)
	if err != nil {
		return nil, fmt.Errorf("hub: node %q: %w", node, err)
	}
	c := *msg
	c.Route.Resource = res
	return &c, nil
}

// ServeConn is the transport Handler: it runs c as node c.NodeName()'s session until the
// session ends or ctx is done.
func (h *Hub) ServeConn(ctx context.Context, c transport.Conn) {
	node := c.NodeName()
	log := h.log.With("node", node, "protocol", c.Protocol(), "remote", c.RemoteAddr().String())
	s := newSession(ctx, h, c, log)
	old, err := h.register(s)
	if err != nil {
		log.Warn("refusing connection", "reason", err)
		_ = c.Close(err.Error())
		s.cancel(err)
		return
	}
	// Only now: a refused node must not get a queue.
	if s.st, err = h.node(node); err != nil {
		h.unregister(s)
		s.cancel(err)
		_ = c.Close(ReasonShutdown)
		if old != nil {
			old.end(ReasonShutdown)
		}
		return
	}
	if old != nil {
		log.Info("new connection replaces the node's session")
		old.end(ReasonReplaced)
		<-old.done // the old session stops sending and returns its in-flight messages first
	}
	defer close(s.done)
	defer h.unregister(s)
	s.run()
}

// register makes s its node's session and returns the session it replaces.
func (h *Hub) register(s *session) (*session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New(ReasonShutdown)
	}
	old := h.sessions[s.node]
	if old == nil && len(h.sessions) >= h.cfg.MaxNodes {
		return nil, fmt.Errorf("%w: %d nodes connected", ErrNodeLimit, h.cfg.MaxNodes)
	}
	h.sessions[s.node] = s
	return old, nil
}

func (h *Hub) unregister(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sessions[s.node] == s { // not if a newer session already took over
		delete(h.sessions, s.node)
	}
}
