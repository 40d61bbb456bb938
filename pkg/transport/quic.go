package transport

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/skerry-io/skerry/pkg/wire"
)

// QUIC application error codes, sent with CONNECTION_CLOSE together with a reason.
const (
	CodeQUICNormal   quic.ApplicationErrorCode = 0x0 // Close(reason)
	CodeQUICRefused  quic.ApplicationErrorCode = 0x1 // identity or hello refused
	CodeQUICTooLarge quic.ApplicationErrorCode = 0x2 // frame length over the limit
	CodeQUICInvalid  quic.ApplicationErrorCode = 0x3 // frame is not a valid message
	CodeQUICShutdown quic.ApplicationErrorCode = 0x4 // server shutting down
	CodeQUICProtocol quic.ApplicationErrorCode = 0x5 // stream misuse (second stream, missing hello, ...)
)

// Framing. Each direction of the connection's single bidirectional stream is a sequence of
// frames: a 4-byte big-endian length, then that many bytes. The client's first frame is the
// hello (JSON {"node_id": ..., "project_id": ...}, the WebSocket headers' names); the server
// answers with an empty frame to accept, or closes the connection with CodeQUICRefused and the
// reason. Every later frame carries one JSON message; empty frames are invalid.
const (
	frameHeaderSize = 4
	maxHelloSize    = 1024
	// maxQUICReason keeps the CONNECTION_CLOSE frame within one small packet.
	maxQUICReason = 512
)

// hello is the client's first frame.
type hello struct {
	NodeID    string `json:"node_id"`
	ProjectID string `json:"project_id"`
}

// readFrame reads one frame from r into buf (reused when large enough). A length over max is
// rejected with wire.ErrTooLarge before any of the body is read, so a hostile length costs
// nothing; a zero length is wire.ErrInvalid.
func readFrame(r io.Reader, max int64, buf []byte) ([]byte, error) {
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int64(binary.BigEndian.Uint32(hdr[:]))
	if n > max {
		return nil, fmt.Errorf("%w: frame length %d, limit %d", wire.ErrTooLarge, n, max)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", wire.ErrInvalid)
	}
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// appendFrameHeader reserves the length prefix; finishFrame fills it in.
func appendFrameHeader(dst []byte) []byte { return append(dst, 0, 0, 0, 0) }

func finishFrame(frame []byte) {
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-frameHeaderSize))
}

func quicConfig(o Options, server bool) *quic.Config {
	c := &quic.Config{
		HandshakeIdleTimeout: o.HandshakeTimeout,
		MaxIdleTimeout:       o.IdleTimeout,
		KeepAlivePeriod:      o.KeepAlivePeriod,
		// One bidirectional stream per connection, opened by the client.
		MaxIncomingStreams:    1,
		MaxIncomingUniStreams: -1,
	}
	if !server {
		c.MaxIncomingStreams = -1
	}
	return c
}

// frameLimit is the largest frame body the 4-byte prefix can express within the limits.
func frameLimit(o Options) int64 {
	return min(o.Limits.MaxMessageSize, math.MaxUint32)
}

// QUICServer accepts edge connections over QUIC.
type QUICServer struct {
	cfg ServerConfig
	udp net.PacketConn
	tr  *quic.Transport
	ln  *quic.Listener
	log *slog.Logger
}

// ListenQUIC binds the QUIC server's UDP address; call Serve to accept connections.
func ListenQUIC(cfg ServerConfig) (*QUICServer, error) {
	cfg, err := cfg.validate(DefaultQUICAddr)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenPacket("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("transport: quic listen: %w", err)
	}
	// Our own Transport (not quic.ListenAddr) so shutdown can close it, and with it every
	// connection and quic-go goroutine, explicitly.
	tr := &quic.Transport{Conn: udp}
	ln, err := tr.Listen(withALPN(cfg.TLS, ALPNQUIC), quicConfig(cfg.Options, true))
	if err != nil {
		_ = tr.Close()
		_ = udp.Close()
		return nil, fmt.Errorf("transport: quic listen: %w", err)
	}
	return &QUICServer{cfg: cfg, udp: udp, tr: tr, ln: ln, log: cfg.Logger.With("transport", ProtocolQUIC)}, nil
}

// Addr is the bound UDP address.
func (s *QUICServer) Addr() net.Addr { return s.ln.Addr() }

// Close releases the listener and socket (only needed when Serve is never called).
func (s *QUICServer) Close() error {
	_ = s.ln.Close()
	_ = s.tr.Close()
	return s.udp.Close()
}

// Serve implements [Server].
func (s *QUICServer) Serve(ctx context.Context) error {
	var conns sync.WaitGroup
	var err error
	for {
		qc, aerr := s.ln.Accept(ctx)
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("transport: quic accept: %w", aerr)
			}
			break
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			s.serveConn(ctx, qc)
		}()
	}
	// Each connection goroutine closes its connection when ctx is done.
	conns.Wait()
	_ = s.Close()
	return err
}

func (s *QUICServer) serveConn(ctx context.Context, qc *quic.Conn) {
	log := s.log.With("remote", qc.RemoteAddr().String())
	// Until the handshake is over, shutdown or the handshake timeout closes the connection.
	stopEarly := context.AfterFunc(ctx, func() { _ = qc.CloseWithError(CodeQUICShutdown, "server shutting down") })
	c, err := s.accept(ctx, qc, log)
	stopEarly()
	if err != nil {
		var ae *quic.ApplicationError
		if !errors.As(err, &ae) || ae.Remote {
			_ = qc.CloseWithError(CodeQUICProtocol, truncateReason(err.Error(), maxQUICReason))
		}
		log.Warn("refused quic connection", "reason", err)
		return
	}
	log = log.With("node", c.node)
	c.log = log
	log.Info("edge connected")
	stop := context.AfterFunc(ctx, func() { c.closeWith(CodeQUICShutdown, "server shutting down") })
	defer stop()
	s.cfg.Handler(ctx, c)
	_ = c.Close("session ended")
	log.Info("edge disconnected")
}

// accept runs the hello exchange; refusals close qc with CodeQUICRefused and the reason.
func (s *QUICServer) accept(ctx context.Context, qc *quic.Conn, log *slog.Logger) (*quicConn, error) {
	hsCtx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	pcs := qc.ConnectionState().TLS.PeerCertificates
	if len(pcs) == 0 {
		return nil, refuseQUIC(qc, "no client certificate")
	}
	st, err := qc.AcceptStream(hsCtx)
	if err != nil {
		return nil, fmt.Errorf("waiting for the hello stream: %w", err)
	}
	_ = st.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	frame, err := readFrame(st, maxHelloSize, nil)
	if err != nil {
		return nil, refuseQUIC(qc, "reading hello: "+err.Error())
	}
	var h hello
	dec := json.NewDecoder(strings.NewReader(string(frame)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, refuseQUIC(qc, "malformed hello: "+err.Error())
	}
	if err := authorize(pcs[0], h.NodeID, h.ProjectID); err != nil {
		return nil, refuseQUIC(qc, err.Error())
	}
	if _, err := st.Write(make([]byte, frameHeaderSize)); err != nil {
		return nil, fmt.Errorf("accepting hello: %w", err)
	}
	_ = st.SetDeadline(time.Time{})
	return newQUICConn(qc, st, s.cfg.Options, h.NodeID, h.ProjectID, pcs[0], log), nil
}

func refuseQUIC(qc *quic.Conn, reason string) error {
	_ = qc.CloseWithError(CodeQUICRefused, truncateReason(reason, maxQUICReason))
	return &quic.ApplicationError{ErrorCode: CodeQUICRefused, ErrorMessage: reason}
}

// QUICDialer dials a QUIC hub as one edge node.
type QUICDialer struct {
	Config DialConfig
}

// Dial implements [Dialer]. A refusal by the server wraps [ErrRefused] with its reason.
func (d QUICDialer) Dial(ctx context.Context) (Conn, error) {
	cfg, err := d.Config.validate()
	if err != nil {
		return nil, err
	}
	tlsConf := withALPN(cfg.TLS, ALPNQUIC)
	if tlsConf.ServerName == "" {
		if host, _, err := net.SplitHostPort(cfg.Addr); err == nil {
			tlsConf.ServerName = host
		}
	}
	hsCtx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	qc, err := quic.DialAddr(hsCtx, cfg.Addr, tlsConf, quicConfig(cfg.Options, false))
	if err != nil {
		return nil, fmt.Errorf("transport: quic dial %s: %w", cfg.Addr, err)
	}
	fail := func(err error) (Conn, error) {
		if ae := remoteAppError(qc, err); ae != nil {
			if ae.ErrorCode == CodeQUICRefused {
				return nil, fmt.Errorf("%w: %s", ErrRefused, ae.ErrorMessage)
			}
			return nil, &CloseError{Code: int(ae.ErrorCode), Reason: ae.ErrorMessage, Remote: true}
		}
		_ = qc.CloseWithError(CodeQUICProtocol, "hello failed")
		return nil, fmt.Errorf("transport: quic hello: %w", err)
	}
	st, err := qc.OpenStreamSync(hsCtx)
	if err != nil {
		return fail(err)
	}
	hb, err := json.Marshal(hello{NodeID: cfg.NodeName, ProjectID: cfg.ProjectID})
	if err != nil {
		return fail(err)
	}
	frame := appendFrameHeader(nil)
	frame = append(frame, hb...)
	finishFrame(frame)
	dl, _ := hsCtx.Deadline()
	_ = st.SetDeadline(dl)
	if _, err := st.Write(frame); err != nil {
		return fail(err)
	}
	var ack [frameHeaderSize]byte
	if _, err := io.ReadFull(st, ack[:]); err != nil {
		return fail(err)
	}
	if ack != [frameHeaderSize]byte{} {
		return fail(errors.New("server answered the hello with a non-empty frame"))
	}
	_ = st.SetDeadline(time.Time{})
	var cert *x509.Certificate
	if pcs := qc.ConnectionState().TLS.PeerCertificates; len(pcs) > 0 {
		cert = pcs[0]
	}
	log := cfg.Logger.With("transport", ProtocolQUIC, "node", cfg.NodeName)
	return newQUICConn(qc, st, cfg.Options, cfg.NodeName, cfg.ProjectID, cert, log), nil
}

// remoteAppError returns the peer's application close, from err or from the connection's
// close cause (a stream read may fail before the close reason is attached to it).
func remoteAppError(qc *quic.Conn, err error) *quic.ApplicationError {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote {
		return ae
	}
	select {
	case <-qc.Context().Done():
		if errors.As(context.Cause(qc.Context()), &ae) && ae.Remote {
			return ae
		}
	case <-time.After(100 * time.Millisecond):
	}
	return nil
}

// quicConn is a [Conn] over one QUIC connection and its single stream.
type quicConn struct {
	connState
	qc      *quic.Conn
	st      *quic.Stream
	readMu  sync.Mutex
	rbuf    []byte
	writeMu sync.Mutex
	wbuf    []byte
}

func newQUICConn(qc *quic.Conn, st *quic.Stream, opts Options, node, project string, cert *x509.Certificate, log *slog.Logger) *quicConn {
	return &quicConn{connState: newConnState(opts, node, project, cert, log), qc: qc, st: st}
}

func (c *quicConn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }
func (c *quicConn) Protocol() string     { return ProtocolQUIC }

// Read implements [Conn].
func (c *quicConn) Read(ctx context.Context) (*wire.Message, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.isClosed() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rd time.Time
	if c.opts.ReadTimeout > 0 {
		rd = time.Now().Add(c.opts.ReadTimeout)
	}
	_ = c.st.SetReadDeadline(rd)
	stop := context.AfterFunc(ctx, func() { _ = c.st.SetReadDeadline(pastTime()) })
	defer stop()

	frame, err := readFrame(c.st, frameLimit(c.opts), c.rbuf)
	if err != nil {
		switch {
		case errors.Is(err, wire.ErrTooLarge):
			c.closeWith(CodeQUICTooLarge, err.Error())
			return nil, err
		case errors.Is(err, wire.ErrInvalid):
			c.closeWith(CodeQUICInvalid, err.Error())
			return nil, err
		case ctx.Err() != nil:
			c.closeWith(CodeQUICShutdown, "read cancelled")
			return nil, ctx.Err()
		case c.isClosed():
			return nil, ErrClosed
		}
		if ae := remoteAppError(c.qc, err); ae != nil {
			c.closeWith(0, "")
			return nil, &CloseError{Code: int(ae.ErrorCode), Reason: ae.ErrorMessage, Remote: true}
		}
		c.closeWith(CodeQUICProtocol, "read failed")
		return nil, fmt.Errorf("transport: quic read: %w", err)
	}
	c.rbuf = retain(frame)
	m, err := wire.Decode(frame, c.opts.Limits)
	if err != nil {
		code := CodeQUICInvalid

		if errors.Is(err, wire.ErrTooLarge) {
			code = CodeQUICTooLarge
		}
		c.closeWith(code, err.Error())
		return nil, err
	}
	return m, nil
}

// Write implements [Conn].
func (c *quicConn) Write(ctx context.Context, m *wire.Message) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.isClosed() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	lim := c.opts.Limits
	lim.MaxMessageSize = frameLimit(c.opts)
	frame, err := wire.AppendEncode(appendFrameHeader(c.wbuf[:0]), m, lim)
	if err != nil {
		return err
	}
	finishFrame(frame)
	_ = c.st.SetWriteDeadline(deadline(ctx, c.opts.WriteTimeout))
	stop := context.AfterFunc(ctx, func() { _ = c.st.SetWriteDeadline(pastTime()) })
	_, err = c.st.Write(frame)
	stop()
	c.wbuf = retain(frame)
	if err != nil {
		// A partly written frame leaves the stream unparseable.
		if ctx.Err() != nil {
			c.closeWith(CodeQUICShutdown, "write cancelled")
			return ctx.Err()
		}
		if c.isClosed() {
			return ErrClosed
		}
		if ae := remoteAppError(c.qc, err); ae != nil {
			c.closeWith(0, "")
			return &CloseError{Code: int(ae.ErrorCode), Reason: ae.ErrorMessage, Remote: true}
		}
		c.closeWith(CodeQUICProtocol, "write failed")
		return fmt.Errorf("transport: quic write: %w", err)
	}
	return nil
}

// Close implements [Conn].
func (c *quicConn) Close(reason string) error {
	c.closeWith(CodeQUICNormal, reason)
	return nil
}

// closeWith closes the connection with an application error (code 0 with an empty reason
// when the peer already closed it; the call then only releases resources).
func (c *quicConn) closeWith(code quic.ApplicationErrorCode, reason string) {
	c.closeOnce.Do(func() {
		close(c.closed)
		if reason != "" {
			c.log.Info("closing connection", "code", code, "reason", reason)
		}
		_ = c.qc.CloseWithError(code, truncateReason(reason, maxQUICReason))
	})
}
