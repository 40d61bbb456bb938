// Package hub is EdgeHub: the edge node's one connection to cloudcore.
//
// It dials the cloud (WebSocket by default, QUIC as an option), and on every connect reports
// the node's inventory so the cloud can send only the difference (architecture principle 2).
// While connected it applies downstream messages through an [Applier] and acknowledges each
// one after the store committed it, drains the durable outbox upstream and removes entries
// only when the cloud acknowledged them (principle 3), and sends a keepalive so the cloud
// does not drop a quiet session. When the connection fails it reconnects with jittered
// exponential backoff (see [Backoff]); the outbox keeps everything unacknowledged, so
// delivery is at-least-once and the cloud de-duplicates by message id.
//
// Decisions worth knowing:
//   - The inventory is the first message on every connection, but the hub does not wait for
//     its ack before sending the outbox: upstream statuses do not depend on the cloud's diff,
//     and waiting would hold them behind the cloud's slowest computation. An error reply to
//     the inventory ends the session (and the retry backs off), because without an accepted
//     inventory the cloud may never send the deletes the edge needs.
//   - An error reply to an outbox entry drops the entry (logged and counted). An error is
//     the cloud's definitive refusal; resending the same bytes gets the same answer, and a
//     poison message must not block the outbox for ever. A cloud with a transient problem
//     should not reply at all: the entry is then resent after AckTimeout or a reconnect.
//   - Replies (operations response and error) are consumed here and never reach the
//     Applier; everything else does, in arrival order, one at a time.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Defaults for [Config].
const (
	DefaultKeepaliveInterval = 15 * time.Second // spec §2
	DefaultWindow            = 32
	// DefaultAckTimeout is how long the sender waits for any ack while messages are in
	// flight before it sends them again on the same connection. It is well above the cloud's
	// 30 s silence rule, so a slow but live cloud is not flooded with duplicates.
	DefaultAckTimeout = 60 * time.Second
)

// ErrInventoryRejected ends a session whose inventory the cloud answered with an error.
var ErrInventoryRejected = errors.New("edgehub: cloud rejected the inventory")

// requestWriteTimeout bounds the write of one request.
const requestWriteTimeout = 10 * time.Second

// ErrOffline: a [Hub.Request] found no connection to the cloud, or lost it before the answer.
var ErrOffline = errors.New("edgehub: not connected to the cloud")

// Inventory reports what the edge store holds; it is read on every connect.
type Inventory interface {
	Inventory(ctx context.Context) (wire.Inventory, error)
}

// Applier commits one downstream message to the edge store. A nil error means the change is
// durable: only then does the hub acknowledge it.
type Applier interface {
	Apply(ctx context.Context, m *wire.Message) error
}

// Config configures a [Hub].
type Config struct {
	// NodeName names this node in logs; the dialer carries the identity itself.
	NodeName string
	// Dialer opens a connection to the cloud and carries the TLS client certificate; see
	// [NewDialer].
	Dialer    transport.Dialer
	Outbox    *store.Outbox
	Inventory Inventory
	Applier   Applier

	// KeepaliveInterval between keepalives (≤ 0: DefaultKeepaliveInterval).
	KeepaliveInterval time.Duration
	// Window is the most outbox entries in flight without an ack (≤ 0: DefaultWindow).
	Window int
	// AckTimeout: see DefaultAckTimeout (≤ 0: the default).
	AckTimeout time.Duration
	// Backoff is the reconnect policy.
	Backoff Backoff
	// Now is the clock for session lengths (nil: time.Now).
	Now func() time.Time
}

// NewDialer returns the dialer for protocol: transport.ProtocolWebSocket (also for "") or
// transport.ProtocolQUIC.
func NewDialer(protocol string, cfg transport.DialConfig) (transport.Dialer, error) {
	switch protocol {
	case "", transport.ProtocolWebSocket:
		return transport.WebSocketDialer{Config: cfg}, nil
	case transport.ProtocolQUIC:
		return transport.QUICDialer{Config: cfg}, nil
	}
	return nil, fmt.Errorf("edgehub: unknown protocol %q", protocol)
}

// Stats are the hub's counters since New.
type Stats struct {
	Connects    uint64 // successful dials
	Applied     uint64 // downstream messages applied and acked
	ApplyErrors uint64 // downstream messages answered with an error
	Acked       uint64 // outbox entries removed by the cloud's ack
	Rejected    uint64 // outbox entries dropped because the cloud answered error
	Sent        uint64 // outbox messages written, resends included
	Resends     uint64 // in-flight windows resent after AckTimeout
}

// Hub is EdgeHub. Create it with [New] and run it with [Run].
type Hub struct {
	cfg Config
	log *slog.Logger
	// notify wakes the sender; capacity 1 so Notify never blocks and a wake-up that arrives
	// while the sender is busy is not lost.
	notify  chan struct{}
	running atomic.Bool

	connects, applied, applyErrors, acked, rejected, sent, resends atomic.Uint64

	// live is the current session's request state; nil while disconnected.
	mu   sync.Mutex
	live *liveSession
}

// liveSession is what [Hub.Request] needs of the current connection.
type liveSession struct {
	conn transport.Conn
	done <-chan struct{} // closed when the session ends
	// pending holds the answer channel of each request in flight, by message id.
	pending map[string]chan *wire.Message
}

// New checks cfg and returns a Hub. log nil means slog.Default().
func New(cfg Config, log *slog.Logger) (*Hub, error) {
	switch {
	case cfg.NodeName == "":
		return nil, errors.New("edgehub: no node name")
	case cfg.Dialer == nil:
		return nil, errors.New("edgehub: no dialer")
	case cfg.Outbox == nil:
		return nil, errors.New("edgehub: no outbox")
	case cfg.Inventory == nil:
		return nil, errors.New("edgehub: no inventory")
	case cfg.Applier == nil:
		return nil, errors.New("edgehub: no applier")
	}
	if cfg.KeepaliveInterval <= 0 {
		cfg.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Hub{
		cfg:    cfg,
		log:    log.With("component", "edgehub", "node", cfg.NodeName),
		notify: make(chan struct{}, 1),
	}, nil
}

// Notify tells the hub that something was enqueued in the outbox. It never blocks; call it
// after Enqueue returned.
func (h *Hub) Notify() {
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (h *Hub) Stats() Stats {
	return Stats{
		Connects:    h.connects.Load(),
		Applied:     h.applied.Load(),
		ApplyErrors: h.applyErrors.Load(),
		Acked:       h.acked.Load(),
		Rejected:    h.rejected.Load(),
		Sent:        h.sent.Load(),
		Resends:     h.resends.Load(),
	}
}

// Run keeps the node connected until ctx is done, then returns nil once every goroutine it
// started has stopped. It fails only if the hub is already running.
func (h *Hub) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return errors.New("edgehub: already running")
	}
	defer h.running.Store(false)

	failures := 0 // consecutive failed dials or short sessions
	timer := time.NewTimer(0)
	timer.Stop()
	defer timer.Stop()
	for {
		connectedAt, err := h.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !connectedAt.IsZero() && h.cfg.Now().Sub(connectedAt) >= h.cfg.Backoff.ResetAfter {
			failures = 0
		}
		delay := h.cfg.Backoff.Delay(failures)
		failures++
		h.log.Warn("edgehub: disconnected from the cloud, will retry",
			"err", err, "retryIn", delay, "failures", failures)
		timer.Reset(delay)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
	}
}

// session runs one connection until it fails or ctx is done. connectedAt is zero when the
// dial failed.
func (h *Hub) session(ctx context.Context) (connectedAt time.Time, err error) {
	conn, err := h.cfg.Dialer.Dial(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("dial: %w", err)
	}
	connectedAt = h.cfg.Now()
	h.connects.Add(1)
	h.log.Info("edgehub: connected to the cloud", "protocol", conn.Protocol(), "remote", conn.RemoteAddr())

	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Closing the connection is what unblocks a Read when the session ends.
	stop := context.AfterFunc(sctx, func() { _ = conn.Close("edgehub: session ended") })
	defer stop()
	defer func() { _ = conn.Close("edgehub: session ended") }()

	// The inventory goes first: nothing else is written before it.
	inv, err := h.cfg.Inventory.Inventory(sctx)
	if err != nil {
		return connectedAt, fmt.Errorf("reading inventory: %w", err)
	}
	invMsg, err := wire.NewInventoryMessage(inv)
	if err != nil {
		return connectedAt, fmt.Errorf("building inventory: %w", err)
	}
	if err := conn.Write(sctx, invMsg); err != nil {
		return connectedAt, fmt.Errorf("sending inventory: %w", err)
	}
	h.log.Info("edgehub: sent inventory", "items", len(inv.Items), "msgID", invMsg.Header.ID)

	replies := make(chan *wire.Message, h.cfg.Window)
	live := &liveSession{conn: conn, done: sctx.Done(), pending: make(map[string]chan *wire.Message)}
	h.mu.Lock()
	h.live = live
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.live = nil
		h.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Go(func() { cancel(h.read(sctx, conn, invMsg.Header.ID, replies)) })
	wg.Go(func() { cancel(h.send(sctx, conn, replies)) })
	wg.Go(func() { cancel(h.keepalive(sctx, conn)) })
	wg.Wait()
	err = context.Cause(sctx)
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return connectedAt, err
}

// Request sends m to the cloud outside the outbox and returns the cloud's answer (a response
// or an error message; the caller reads which). It is for what must not be queued while
// offline, such as a write a local client waits for: without a connection it fails at once
// with an error wrapping [ErrOffline], and so it does when the connection is lost before the
// answer. m gets header.sync set. The answer comes back on the same connection as the request,
// so a request is never answered twice.
func (h *Hub) Request(ctx context.Context, m *wire.Message) (*wire.Message, error) {
	h.mu.Lock()
	live := h.live
	if live == nil {
		h.mu.Unlock()
		return nil, ErrOffline
	}
	id := m.Header.ID
	if _, dup := live.pending[id]; dup || id == "" {
		h.mu.Unlock()
		return nil, fmt.Errorf("edgehub: request needs a unique message id, got %q", id)
	}
	answer := make(chan *wire.Message, 1)
	live.pending[id] = answer
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(live.pending, id)
		h.mu.Unlock()
	}()

	m.Header.Sync = true
	// A write cancelled half-way closes the connection (the transport's contract), so a
	// caller that gives up must not cut the node off: the write gets its own deadline.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requestWriteTimeout)
	defer cancel()
	if err := live.conn.Write(wctx, m); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: sending %s: %w", ErrOffline, m.Route.Resource, err)
	}
	select {
	case r := <-answer:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-live.done:
		return nil, fmt.Errorf("%w: connection lost before the answer to %s", ErrOffline, m.Route.Resource)
	}
}

// answerRequest hands r to the Request waiting for it; false if none is.
func (h *Hub) answerRequest(r *wire.Message) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.live == nil {
		return false
	}
	ch, ok := h.live.pending[r.Header.ParentID]
	if !ok {
		return false
	}
	delete(h.live.pending, r.Header.ParentID)
	ch <- r // buffered, and only one answer is ever delivered
	return true
}

func isReply(m *wire.Message) bool {
	return m.Route.Operation == wire.OpResponse || m.Route.Operation == wire.OpError
}

// read dispatches incoming messages: replies to the sender, everything else to the Applier.
// Applying here, in the reading goroutine, is what makes Apply ordered and one at a time.
func (h *Hub) read(ctx context.Context, conn transport.Conn, invID string, replies chan<- *wire.Message) error {
	for {
		m, err := conn.Read(ctx)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		switch {
		case m.IsKeepalive():
			// The edge is the one that must keep the session alive; nothing to answer.
		case isReply(m) && m.Header.ParentID == invID:
			if m.Route.Operation == wire.OpError {
				return fmt.Errorf("%w: %s", ErrInventoryRejected, m.Content)
			}
			h.log.Debug("edgehub: cloud accepted the inventory")
		case isReply(m):
			if m.Header.ParentID == "" {
				h.log.Warn("edgehub: ignoring reply without parent_msg_id", "msgID", m.Header.ID, "resource", m.Route.Resource)
				continue
			}
			if h.answerRequest(m) {
				continue
			}
			select {
			case replies <- m:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		default:
			if err := h.apply(ctx, conn, m); err != nil {
				return err
			}
		}
	}
}

// apply commits m and answers it: an ack after the commit, an error reply otherwise.
func (h *Hub) apply(ctx context.Context, conn transport.Conn, m *wire.Message) error {
	var reply *wire.Message
	if err := h.cfg.Applier.Apply(ctx, m); err != nil {
		if ctx.Err() != nil {
			// Shutting down, not a verdict on the message: the cloud resends it.
			return context.Cause(ctx)
		}
		h.applyErrors.Add(1)
		h.log.Warn("edgehub: could not apply downstream message",
			"msgID", m.Header.ID, "operation", m.Route.Operation, "resource", m.Route.Resource, "err", err)
		reply = m.Error(err.Error())
	} else {
		h.applied.Add(1)
		reply = m.Ack()
	}
	if err := conn.Write(ctx, reply); err != nil {
		return fmt.Errorf("replying to %s: %w", m.Header.ID, err)
	}
	return nil
}

// send drains the outbox: at most Window entries in flight, each removed from the outbox
// only when the cloud answers it.
func (h *Hub) send(ctx context.Context, conn transport.Conn, replies <-chan *wire.Message) error {
	ob := h.cfg.Outbox
	inflight := make(map[string]store.Entry, h.cfg.Window) // by message id
	// cursor is the last Seq handed out. It goes back to 0 whenever nothing is in flight, so
	// a coalesced entry replaced while in flight (same Seq, new id) is picked up again.
	var cursor int64
	ackTimer := time.NewTimer(h.cfg.AckTimeout)
	ackTimer.Stop()
	defer ackTimer.Stop()

	for {
		if n := h.cfg.Window - len(inflight); n > 0 {
			wasIdle := len(inflight) == 0
			es, err := ob.NextAfter(ctx, cursor, n)
			if err != nil {
				return fmt.Errorf("reading outbox: %w", err)
			}
			for _, e := range es {
				if err := conn.Write(ctx, e.Message); err != nil {
					return fmt.Errorf("sending %s: %w", e.Key, err)
				}
				h.sent.Add(1)
				inflight[e.Message.Header.ID] = e
				cursor = e.Seq
			}
			if wasIdle && len(inflight) > 0 {
				ackTimer.Reset(h.cfg.AckTimeout)
			}
		}

		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-h.notify:
		case r := <-replies:
			batch := []*wire.Message{r}
		drain:
			for len(batch) < cap(replies) {
				select {
				case r := <-replies:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			progress, err := h.settle(ctx, inflight, batch)
			if err != nil {
				return err
			}
			if len(inflight) == 0 {
				cursor = 0
				ackTimer.Stop()
			} else if progress {
				ackTimer.Reset(h.cfg.AckTimeout)
			}
		case <-ackTimer.C:
			h.resends.Add(1)
			h.log.Warn("edgehub: no ack from the cloud in time, resending in-flight messages",
				"inFlight", len(inflight), "ackTimeout", h.cfg.AckTimeout)
			clear(inflight)
			cursor = 0
		}
	}
}

// settle removes the entries a batch of replies answers, in one store transaction. It
// reports whether any reply matched an in-flight entry.
func (h *Hub) settle(ctx context.Context, inflight map[string]store.Entry, batch []*wire.Message) (bool, error) {
	ob := h.cfg.Outbox
	ids := make([]int64, 0, len(batch))
	for _, r := range batch {
		parent := r.Header.ParentID
		e, ok := inflight[parent]
		if r.Route.Operation == wire.OpError {
			h.rejected.Add(1)
			h.log.Warn("edgehub: cloud rejected upstream message, dropping it",
				"msgID", parent, "resource", r.Route.Resource, "reason", string(r.Content))
		}
		if !ok {
			// A late answer to a message sent before an ack-timeout resend, or an answer to
			// something that is not ours: remove by message id, a no-op if nothing matches.
			removed, err := ob.AckMessage(ctx, parent)
			if err != nil {
				return false, fmt.Errorf("acking %s: %w", parent, err)
			}
			if removed && r.Route.Operation == wire.OpResponse {
				h.acked.Add(1)
			}
			continue
		}
		delete(inflight, parent)
		if r.Route.Operation == wire.OpResponse {
			h.acked.Add(1)
		}
		ids = append(ids, e.ID)
	}
	if len(ids) == 0 {
		return false, nil
	}
	if _, err := ob.AckAll(ctx, ids); err != nil {
		return true, fmt.Errorf("acking %d entries: %w", len(ids), err)
	}
	return true, nil
}

// keepalive sends the spec's keepalive every KeepaliveInterval.
func (h *Hub) keepalive(ctx context.Context, conn transport.Conn) error {
	t := time.NewTicker(h.cfg.KeepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
			if err := conn.Write(ctx, wire.NewKeepalive()); err != nil {
				return fmt.Errorf("keepalive: %w", err)
			}
		}
	}
}
