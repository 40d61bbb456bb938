package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/skerry-io/skerry/pkg/wire"
)

// WebSocket close codes the server and client send (RFC 6455 §7.4.1).
const (
	CodeWSNormal      = websocket.CloseNormalClosure           // Close(reason)
	CodeWSGoingAway   = websocket.CloseGoingAway               // server shutting down
	CodeWSUnsupported = websocket.CloseUnsupportedData         // binary frame
	CodeWSInvalid     = websocket.CloseInvalidFramePayloadData // not a valid message
	CodeWSTooBig      = websocket.CloseMessageTooBig           // over the read limit
)

// Request headers KubeEdge's edgehub sends with the upgrade.
const (
	HeaderNodeID    = "node_id"
	HeaderProjectID = "project_id"
)

// maxCloseReason is what fits in a close frame (125 bytes) after the 2-byte code.
const maxCloseReason = 123

// WebSocketServer serves KubeEdge's /<projectID>/<nodeName>/events endpoint.
type WebSocketServer struct {
	cfg ServerConfig
	ln  net.Listener
	log *slog.Logger
}

// ListenWebSocket binds the WebSocket server's address; call Serve to accept connections.
func ListenWebSocket(cfg ServerConfig) (*WebSocketServer, error) {
	cfg, err := cfg.validate(DefaultWebSocketAddr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("transport: websocket listen: %w", err)
	}
	return &WebSocketServer{cfg: cfg, ln: ln, log: cfg.Logger.With("transport", ProtocolWebSocket)}, nil
}

// Addr is the bound address.
func (s *WebSocketServer) Addr() net.Addr { return s.ln.Addr() }

// Close releases the listener (only needed when Serve is never called).
func (s *WebSocketServer) Close() error { return s.ln.Close() }

// Serve implements [Server].
func (s *WebSocketServer) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Upgraded connections are hijacked: http.Server no longer tracks them, so handlers are
	// counted here and Serve waits for them.
	var handlers handlerSet
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveHTTP(ctx, &handlers, w, r) }),
		ReadHeaderTimeout: s.cfg.HandshakeTimeout, // also bounds the TLS handshake
		WriteTimeout:      0,                      // hijacked connections set their own deadlines
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		// No HTTP/2: a WebSocket upgrade needs HTTP/1.1.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(s.ln, withALPN(s.cfg.TLS, alpnWebSocket))) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	_ = srv.Close() // closes the listener and connections still in the HTTP phase
	if e := <-errc; err == nil && !errors.Is(e, http.ErrServerClosed) {
		err = e
	}
	handlers.closeAndWait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("transport: websocket serve: %w", err)
	}
	return nil
}

// handlerSet counts running handlers; once closed it admits no new ones, so Wait cannot race
// with a late Add from a request that was already in flight at shutdown.
type handlerSet struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (h *handlerSet) add() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

func (h *handlerSet) closeAndWait() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.wg.Wait()
}

func (s *WebSocketServer) serveHTTP(ctx context.Context, handlers *handlerSet, w http.ResponseWriter, r *http.Request) {
	log := s.log.With("remote", r.RemoteAddr)
	if !handlers.add() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	defer handlers.wg.Done()
	if ctx.Err() != nil {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	projectID, nodeName, ok := parseEventsPath(r.URL.Path)
	if !ok {
		http.Error(w, "not found: the endpoint is /<projectID>/<nodeName>/events", http.StatusNotFound)
		return
	}
	log = log.With("node", nodeName)
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		refuse(w, log, "no client certificate")
		return
	}
	cert := r.TLS.PeerCertificates[0]
	if h := r.Header.Get(HeaderNodeID); h != nodeName {
		refuse(w, log, fmt.Sprintf("%s header %q does not match node %q in the path", HeaderNodeID, h, nodeName))
		return
	}
	if h := r.Header.Get(HeaderProjectID); h != "" && h != projectID {
		refuse(w, log, fmt.Sprintf("%s header %q does not match project %q in the path", HeaderProjectID, h, projectID))
		return
	}
	if err := authorize(cert, nodeName, projectID); err != nil {
		refuse(w, log, err.Error())
		return
	}
	up := websocket.Upgrader{HandshakeTimeout: s.cfg.HandshakeTimeout}
	ws, err := up.Upgrade(w, r, nil) // writes its own error response
	if err != nil {
		log.Info("websocket upgrade failed", "err", err)
		return
	}
	c := newWSConn(ws, s.cfg.Options, nodeName, projectID, cert, log)
	log.Info("edge connected")
	// Shutdown wakes a handler blocked in Read by closing its connection.
	stop := context.AfterFunc(ctx, func() { c.closeWith(CodeWSGoingAway, "server shutting down") })
	defer stop()
	s.cfg.Handler(ctx, c)
	_ = c.Close("session ended")
	log.Info("edge disconnected")
}

func refuse(w http.ResponseWriter, log *slog.Logger, reason string) {
	log.Warn("refused websocket connection", "reason", reason)
	http.Error(w, "forbidden: "+reason, http.StatusForbidden)
}

// parseEventsPath splits /<projectID>/<nodeName>/events.
func parseEventsPath(p string) (projectID, nodeName string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) != 3 || parts[2] != "events" || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// WebSocketDialer dials a WebSocket hub as one edge node.
type WebSocketDialer struct {
	Config DialConfig
}

// Dial implements [Dialer]. A refusal by the server wraps [ErrRefused] with its reason.
func (d WebSocketDialer) Dial(ctx context.Context) (Conn, error) {
	cfg, err := d.Config.validate()
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "wss", Host: cfg.Addr, Path: "/" + cfg.ProjectID + "/" + cfg.NodeName + "/events"}
	h := http.Header{}
	// Set directly: KubeEdge's names contain '_' and are sent exactly as written.
	h[HeaderNodeID] = []string{cfg.NodeName}
	h[HeaderProjectID] = []string{cfg.ProjectID}
	dialer := websocket.Dialer{
		TLSClientConfig:  withALPN(cfg.TLS, alpnWebSocket),
		HandshakeTimeout: cfg.HandshakeTimeout,
	}
	ws, resp, err := dialer.DialContext(ctx, u.String(), h)
	if err != nil {
		if resp != nil {
			reason := readLimited(resp.Body, 1024)
			_ = resp.Body.Close()
			return nil, fmt.Errorf("%w: %s: %s", ErrRefused, resp.Status, reason)
		}
		return nil, fmt.Errorf("transport: websocket dial %s: %w", cfg.Addr, err)
	}
	var cert *x509.Certificate
	if tc, ok := ws.NetConn().(*tls.Conn); ok {
		if pcs := tc.ConnectionState().PeerCertificates; len(pcs) > 0 {
			cert = pcs[0]
		}
	}
	log := cfg.Logger.With("transport", ProtocolWebSocket, "node", cfg.NodeName)
	return newWSConn(ws, cfg.Options, cfg.NodeName, cfg.ProjectID, cert, log), nil
}

// wsConn is a [Conn] over one WebSocket.
type wsConn struct {
	connState
	ws      *websocket.Conn
	readMu  sync.Mutex
	writeMu sync.Mutex
	wbuf    []byte
}

func newWSConn(ws *websocket.Conn, opts Options, node, project string, cert *x509.Certificate, log *slog.Logger) *wsConn {
	ws.SetReadLimit(opts.Limits.MaxMessageSize)
	return &wsConn{connState: newConnState(opts, node, project, cert, log), ws: ws}
}

func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }
func (c *wsConn) Protocol() string     { return ProtocolWebSocket }

// Read implements [Conn].
func (c *wsConn) Read(ctx context.Context) (*wire.Message, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.isClosed() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	nc := c.ws.NetConn()
	var rd time.Time
	if c.opts.ReadTimeout > 0 {
		rd = time.Now().Add(c.opts.ReadTimeout)
	}
	_ = nc.SetReadDeadline(rd)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(pastTime()) })
	defer stop()

	typ, r, err := c.ws.NextReader()
	if err != nil {
		return nil, c.readFailed(ctx, err)
	}
	if typ != websocket.TextMessage {
		c.closeWith(CodeWSUnsupported, "binary frames are not accepted: one JSON message per text frame")
		return nil, fmt.Errorf("%w: binary frame", wire.ErrInvalid)
	}
	m, err := wire.DecodeFrom(r, c.opts.Limits)
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) {
			c.closeWith(CodeWSTooBig, err.Error())
			return nil, err
		}
		if errors.Is(err, wire.ErrInvalid) {
			c.closeWith(CodeWSInvalid, err.Error())
			return nil, err
		}
		return nil, c.readFailed(ctx, err)
	}
	return m, nil
}

// readFailed turns a read error into the error Read reports, and closes the connection.
func (c *wsConn) readFailed(ctx context.Context, err error) error {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		// gorilla already answered the peer's close frame.
		c.closeWith(0, "")
		return &CloseError{Code: ce.Code, Reason: ce.Text, Remote: true}
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla already sent close 1009 before reading the frame's body.
		c.closeWith(0, "")
		return fmt.Errorf("%w: frame over %d bytes", wire.ErrTooLarge, c.opts.Limits.MaxMessageSize)
	case ctx.Err() != nil:
		c.closeWith(CodeWSGoingAway, "read cancelled")
		return ctx.Err()
	case c.isClosed():
		return ErrClosed
	}
	c.closeWith(0, "")
	return fmt.Errorf("transport: websocket read: %w", err)
}

// Write implements [Conn].
func (c *wsConn) Write(ctx context.Context, m *wire.Message) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.isClosed() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	buf, err := wire.AppendEncode(c.wbuf[:0], m, c.opts.Limits)
	if err != nil {
		return err
	}
	// The deadline goes on the net.Conn: gorilla's own setter is not safe against the
	// concurrent AfterFunc below.
	nc := c.ws.NetConn()
	_ = nc.SetWriteDeadline(deadline(ctx, c.opts.WriteTimeout))
	stop := context.AfterFunc(ctx, func() { _ = nc.SetWriteDeadline(pastTime()) })
	err = c.ws.WriteMessage(websocket.TextMessage, buf)
	stop()
	c.wbuf = retain(buf)
	if err != nil {
		// A timed-out TLS write leaves the stream unusable.
		c.closeWith(0, "")
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c.isClosed() && errors.Is(err, net.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("transport: websocket write: %w", err)
	}
	return nil
}

// Close implements [Conn].
func (c *wsConn) Close(reason string) error {
	c.closeWith(CodeWSNormal, reason)
	return nil
}

// closeWith sends a close frame with code and reason (code 0: none) and closes the socket.
func (c *wsConn) closeWith(code int, reason string) {
	c.closeOnce.Do(func() {
		if code != 0 {
			msg := websocket.FormatCloseMessage(code, truncateReason(reason, maxCloseReason))
			if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.opts.WriteTimeout)); err != nil {
				c.log.Debug("sending close frame failed", "err", err)
			}
			c.log.Info("closing connection", "code", code, "reason", reason)
		}
		close(c.closed)
		_ = c.ws.Close()
	})
}
