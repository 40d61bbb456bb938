package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

// session is one connection of one node. Its four goroutines (reader, sender, upstream
// worker, watchdog) all stop when ctx is done; the first to fail ends the session for all.
type session struct {
	hub  *Hub
	node string
	st   *nodeState // set by ServeConn once the session is admitted
	conn transport.Conn
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc
	// io is ctx without its cancellation, for Read and Write: a read or write cancelled by
	// the transport closes the connection with its own reason, so the session is ended by
	// end (which closes the connection with ours) instead.
	io   context.Context
	done chan struct{} // closed once the session stopped and returned its in-flight messages

	endOnce sync.Once
	reason  string // why the session ended; written once by end

	lastSeen atomic.Int64 // unix nanoseconds of the last message read
	handing  atomic.Bool  // the reader waits for room in upstream: not silence

	mu       sync.Mutex
	inflight map[string]struct{} // ids sent on this session and not answered yet

	upstream chan *wire.Message

	// inventoried is closed once the edge's first inventory has been handled: the send loop
	// waits for it, so nothing queued while the node was away reaches the edge before the
	// resync has compared the queue with what the edge holds.
	inventoried     chan struct{}
	inventoriedOnce sync.Once
}

// InventoryWait is how long a session holds downstream messages back waiting for the edge's
// inventory. Our edges send it first; an edge that never does still gets its messages.
const InventoryWait = 10 * time.Second

func newSession(ctx context.Context, h *Hub, c transport.Conn, log *slog.Logger) *session {
	s := &session{
		hub:      h,
		node:     c.NodeName(),
		conn:     c,
		log:      log,
		done:     make(chan struct{}),
		inflight: make(map[string]struct{}),
		upstream: make(chan *wire.Message, h.cfg.UpstreamBuffer),

		inventoried: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	s.io = context.WithoutCancel(s.ctx)
	return s
}

// end closes the session with reason (the first reason given wins) and stops its goroutines.
func (s *session) end(reason string) {
	s.endOnce.Do(func() {
		s.reason = reason
		_ = s.conn.Close(reason)
		s.cancel(errors.New(reason))
	})
}

// stopReason is the reason to end with after err: shutdown when our context ended first.
func (s *session) stopReason(what string, err error) string {
	if s.ctx.Err() != nil {
		return ReasonShutdown
	}
	return fmt.Sprintf("%s: %v", what, err)
}

func (s *session) run() {
	if s.ctx.Err() != nil { // replaced again, or shutdown, before it started
		return
	}
	info := SessionInfo{
		Protocol:    s.conn.Protocol(),
		ProjectID:   s.conn.ProjectID(),
		RemoteAddr:  s.conn.RemoteAddr(),
		ConnectedAt: time.Now(),
	}
	s.lastSeen.Store(info.ConnectedAt.UnixNano())
	s.log.Info("session started")
	if o := s.hub.cfg.Observer; o != nil {
		o.NodeConnected(s.node, info)
	}
	stop := context.AfterFunc(s.ctx, func() { s.end(ReasonShutdown) }) // no-op after another end
	defer stop()
	var wg sync.WaitGroup
	wg.Go(s.readLoop)
	wg.Go(s.sendLoop)
	wg.Go(s.upstreamLoop)
	wg.Go(s.watchdog)
	wg.Wait()
	s.end(ReasonShutdown) // no-op unless every loop returned without a reason
	n := s.requeue()
	s.log.Info("session ended", "reason", s.reason, "requeued", n)
	if o := s.hub.cfg.Observer; o != nil {
		o.NodeDisconnected(s.node, s.reason)
	}
}

// requeue hands the messages this session sent and nobody answered back to the queue, so the
// next session resends them after the key's backoff instead of after the ack timeout.
func (s *session) requeue() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range s.inflight {
		if s.st.q.Nack(id) { // false: acked, superseded or already retrying
			n++
		}
	}
	clear(s.inflight)
	return n
}

func (s *session) readLoop() {
	for {
		m, err := s.conn.Read(s.io)
		if err != nil {
			s.end(s.stopReason("read", err))
			return
		}
		s.lastSeen.Store(time.Now().UnixNano())
		switch {
		case m.IsKeepalive():
			// Liveness only; KubeEdge's cloud sends no answer either.
		case (m.Route.Operation == wire.OpResponse || m.Route.Operation == wire.OpError) && m.Header.ParentID != "":
			s.answer(m)
		default:
			if !s.handOff(m) {
				s.end(ReasonShutdown)
				return
			}
		}
	}
}

// answer applies the edge's ack or error to the queue.
func (s *session) answer(m *wire.Message) {
	id := m.Header.ParentID
	s.mu.Lock()
	delete(s.inflight, id)
	s.mu.Unlock()
	if m.Route.Operation == wire.OpResponse {
		if !s.st.q.Ack(id) {
			s.log.Debug("ack of an unknown or superseded message", "parent", id)
		}
		return
	}
	s.log.Warn("edge refused a message", "parent", id, "resource", m.Route.Resource, "error", string(m.Content))
	s.st.q.Nack(id)
}

// handOff gives m to the upstream worker, waiting for room; false when the session ended.
func (s *session) handOff(m *wire.Message) bool {
	select {
	case s.upstream <- m:
		return true
	default:
	}
	s.handing.Store(true)
	defer func() {
		s.handing.Store(false)
		s.lastSeen.Store(time.Now().UnixNano())
	}()
	select {
	case s.upstream <- m:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *session) upstreamLoop() {
	for {
		var m *wire.Message
		select {
		case <-s.ctx.Done():
			return
		case m = <-s.upstream:
		}
		var (
			content json.RawMessage
			err     error
		)
		if wire.IsInventory(m) {
			err = s.resync(m)
			// Also after a failed resync: the edge sends its inventory again, and holding the
			// queue back meanwhile could keep it full for ever.
			s.inventoriedOnce.Do(func() { close(s.inventoried) })
		} else {
			content, err = s.hub.cfg.Upstream.Handle(s.ctx, s.node, m)
		}
		reply := m.Ack()
		switch {
		case err == nil && content != nil:
			reply = m.Reply(content)
		case err != nil && s.ctx.Err() != nil:
			return // the edge resends what it did not see acknowledged
		case errors.Is(err, ErrTransient) && m.Header.Sync:
			// A request someone waits for is not in the edge's outbox: nothing would resend
			// it, so say it failed for now and let the caller retry.
			s.log.Warn("upstream request failed for now", "operation", m.Route.Operation, "resource", m.Route.Resource, "err", err)
			reply = m.Error(err.Error())
		case errors.Is(err, ErrTransient):
			s.log.Warn("upstream message failed, leaving it for the edge to resend",
				"operation", m.Route.Operation, "resource", m.Route.Resource, "err", err)
			continue
		case err != nil:
			s.log.Warn("upstream message failed", "operation", m.Route.Operation, "resource", m.Route.Resource, "err", err)
			reply = m.Error(err.Error())
		}
		if err := s.conn.Write(s.io, reply); err != nil {
			s.end(s.stopReason("write", err))
			return
		}
	}
}

func (s *session) sendLoop() {
	wait := time.NewTimer(InventoryWait)
	select {
	case <-s.inventoried:
	case <-wait.C:
		s.log.Warn("no inventory from the edge, sending queued messages without a resync", "waited", InventoryWait)
	case <-s.ctx.Done():
	}
	wait.Stop()
	for {
		// Wait for a token before taking a message, so the ack timeout does not run while
		// the message only waits for the rate limit.
		if err := s.st.lim.Wait(s.ctx); err != nil {
			s.end(s.stopReason("rate limiter", err))
			return
		}
		it, err := s.st.q.Next(s.ctx)
		if err != nil {
			s.end(s.stopReason("queue", err))
			return
		}
		id := it.Msg.Header.ID
		s.mu.Lock()
		s.inflight[id] = struct{}{}
		s.mu.Unlock()
		err = s.conn.Write(s.io, it.Msg)
		switch {
		case err == nil:
		case s.ctx.Err() == nil && (errors.Is(err, wire.ErrInvalid) || errors.Is(err, wire.ErrTooLarge)):
			// The codec refused it and the connection is fine: resending cannot help, so
			// drop the message (an ack from us) rather than retry it forever.
			s.log.Error("dropping a message the codec refuses", "key", it.Key.String(), "err", err)
			s.mu.Lock()
			delete(s.inflight, id)
			s.mu.Unlock()
			s.st.q.Ack(id)
		default:
			s.end(s.stopReason("write", err))
			return
		}
	}
}

// watchdog closes the session after KeepaliveTimeout without a message from the edge.
func (s *session) watchdog() {
	timeout := s.hub.cfg.KeepaliveTimeout
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if s.handing.Load() {
			t.Reset(timeout)
			continue
		}
		idle := time.Since(time.Unix(0, s.lastSeen.Load()))
		if idle >= timeout {
			s.log.Warn("edge silent, closing session", "silent", idle.Round(time.Millisecond))
			s.end(fmt.Sprintf("keepalive timeout: no message for %s", timeout))
			return
		}
		t.Reset(timeout - idle)
	}
}
