// Package transport carries whole wire messages between cloudcore and one edge node, over
// WebSocket (KubeEdge-compatible, ../shared/spec/kubeedge-compat.md §2) or over QUIC (RFC 9000,
// our own framing: KubeEdge's QUIC cannot interoperate anyway). Both sit behind [Conn], so the
// hubs never see frames, TLS or sockets.
//
// Both transports use mutual TLS; a node's identity is its client certificate (CN
// "system:node:<name>", O "system:nodes"). The server refuses a connection whose requested node
// name differs from the certificate's, before any message flows: there is no bypass.
//
// What the package does not do: sessions, acks, resends and keepalive messages belong to the
// hubs. A Conn is one connection; when it fails the hub dials again.
package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skerry-io/skerry/pkg/wire"
)

// Protocol names returned by [Conn.Protocol].
const (
	ProtocolWebSocket = "websocket"
	ProtocolQUIC      = "quic"
)

// Defaults (KubeEdge ports, spec §4).
const (
	DefaultWebSocketAddr    = ":10000"
	DefaultQUICAddr         = ":10001"
	DefaultProjectID        = "e632aba927ea4ac2b575ec1603d56f10"
	DefaultWriteTimeout     = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultIdleTimeout matches the cloud's 30 s silence rule: a QUIC connection whose peer
	// vanished without a close is torn down on the same schedule as a silent session.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultKeepAlivePeriod keeps NAT bindings and the idle timer alive on quiet QUIC links.
	DefaultKeepAlivePeriod = 15 * time.Second
)

// Node certificate identity, as Kubernetes' node authorizer reads it.
const (
	NodeCommonNamePrefix = "system:node:"
	NodesOrganization    = "system:nodes"
)

// maxProjectIDLength bounds the project id from the URL path or the QUIC hello.
const maxProjectIDLength = 128

var (
	// ErrRefused: the server refused the connection after TLS (wrong identity, bad request).
	// The error text carries the server's reason.
	ErrRefused = errors.New("transport: connection refused by server")
	// ErrClosed: the connection was closed locally; further calls fail with it.
	ErrClosed = errors.New("transport: connection closed")
)

// Conn carries whole messages over one authenticated connection.
//
// Read must be called from one goroutine at a time; Write is safe for concurrent use and
// Close may be called at any time. A failed Read or Write (including one whose context was
// cancelled mid-operation) closes the connection: a half-read frame or half-written TLS record
// cannot be resumed, so the hub must dial again.
type Conn interface {
	// Read returns the next message. When the peer closed the connection with a reason the
	// error wraps a *CloseError; a frame over the limit or a malformed frame closes the
	// connection (the peer learns why) and the error wraps wire.ErrTooLarge or wire.ErrInvalid.
	Read(ctx context.Context) (*wire.Message, error)
	// Write sends one message within the write timeout (or ctx's deadline, if sooner). A
	// message the codec refuses is reported without harming the connection.
	Write(ctx context.Context, m *wire.Message) error
	// Close closes the connection, telling the peer reason. Messages written but not yet
	// delivered may be lost: delivery is the hubs' business (acks and resends).
	Close(reason string) error
	// NodeName is the edge node on this connection (server side: verified against the
	// certificate; client side: the name the client dialled as).
	NodeName() string
	// ProjectID is the KubeEdge project id from the request.
	ProjectID() string
	// PeerCertificate is the peer's verified leaf certificate.
	PeerCertificate() *x509.Certificate
	RemoteAddr() net.Addr
	// Protocol is ProtocolWebSocket or ProtocolQUIC.
	Protocol() string
}

// Handler serves one accepted connection. It must return when ctx is done (the server is
// shutting down); the server closes the connection when the handler returns.
type Handler func(ctx context.Context, c Conn)

// Server is a listener for one transport; Serve runs until its context is cancelled.
type Server interface {
	Addr() net.Addr
	// Serve accepts connections and calls the handler for each, in its own goroutine. When ctx
	// is cancelled it stops accepting, closes every connection, waits for all handlers to
	// return and returns nil.
	Serve(ctx context.Context) error
	// Close releases the listener when Serve is never called.
	Close() error
}

// Dialer opens a client connection to a server of one transport.
type Dialer interface {
	Dial(ctx context.Context) (Conn, error)
}

// CloseError is how the peer closed the connection.
type CloseError struct {
	// Code is the WebSocket close code or the QUIC application error code (see the Code*
	// constants of each transport).
	Code int
	// Reason is the peer's (or our own, when Remote is false) explanation.
	Reason string
	// Remote is true when the peer closed the connection.
	Remote bool
}

func (e *CloseError) Error() string {
	who := "local"
	if e.Remote {
		who = "peer"
	}
	return fmt.Sprintf("transport: connection closed by %s: code %d: %s", who, e.Code, e.Reason)
}

// Options are the settings clients and servers share. Zero values mean the defaults.
type Options struct {
	// Limits bound every received message; the read limit is Limits.MaxMessageSize.
	Limits wire.Limits
	// WriteTimeout bounds each Write (default DefaultWriteTimeout).
	WriteTimeout time.Duration
	// ReadTimeout bounds each Read; zero means no deadline (the hub's keepalive decides when
	// a silent peer is dead).
	ReadTimeout time.Duration
	// HandshakeTimeout bounds TLS plus the WebSocket upgrade or the QUIC hello.
	HandshakeTimeout time.Duration
	// IdleTimeout and KeepAlivePeriod configure QUIC (defaults DefaultIdleTimeout and
	// DefaultKeepAlivePeriod); WebSocket relies on the hub's keepalive messages.
	IdleTimeout     time.Duration
	KeepAlivePeriod time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Limits.MaxMessageSize <= 0 {
		o.Limits.MaxMessageSize = wire.DefaultMaxMessageSize
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.KeepAlivePeriod <= 0 {
		o.KeepAlivePeriod = DefaultKeepAlivePeriod
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// ServerConfig configures a server of either transport.
type ServerConfig struct {
	// Addr is the listen address; empty means the transport's default port on all interfaces.
	Addr string
	// TLS is a server configuration from [ServerTLSConfig] (client certificates required).
	TLS     *tls.Config
	Handler Handler
	Options
}

// DialConfig configures a client of either transport.
type DialConfig struct {
	// Addr is the server's host:port.
	Addr string
	// NodeName is this node's name; it must match the client certificate.
	NodeName string
	// ProjectID defaults to DefaultProjectID.
	ProjectID string
	// TLS is a client configuration from [ClientTLSConfig].
	TLS *tls.Config
	Options
}

func (c DialConfig) validate() (DialConfig, error) {
	c.Options = c.Options.withDefaults()
	if c.ProjectID == "" {
		c.ProjectID = DefaultProjectID
	}
	if c.Addr == "" {
		return c, errors.New("transport: dial: no address")
	}
	if c.TLS == nil {
		return c, errors.New("transport: dial: no TLS configuration")
	}
	if err := checkNodeName(c.NodeName); err != nil {
		return c, fmt.Errorf("transport: dial: %w", err)
	}
	if err := checkProjectID(c.ProjectID); err != nil {
		return c, fmt.Errorf("transport: dial: %w", err)
	}
	return c, nil
}

func (c ServerConfig) validate(defaultAddr string) (ServerConfig, error) {
	c.Options = c.Options.withDefaults()
	if c.Addr == "" {
		c.Addr = defaultAddr
	}
	if c.TLS == nil {
		return c, errors.New("transport: server: no TLS configuration")
	}
	if c.Handler == nil {
		return c, errors.New("transport: server: no handler")
	}
	return c, nil
}

// NodeNameFromCertificate returns the node a client certificate identifies: CN
// "system:node:<name>" with O "system:nodes", the identity Kubernetes' node authorizer uses.
func NodeNameFromCertificate(cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", errors.New("no client certificate")
	}
	cn := cert.Subject.CommonName
	name, ok := strings.CutPrefix(cn, NodeCommonNamePrefix)
	if !ok {
		return "", fmt.Errorf("certificate common name %q is not %q<node name>", cn, NodeCommonNamePrefix)
	}
	if err := checkNodeName(name); err != nil {
		return "", fmt.Errorf("certificate common name %q: %w", cn, err)
	}
	for _, o := range cert.Subject.Organization {
		if o == NodesOrganization {
			return name, nil
		}
	}
	return "", fmt.Errorf("certificate for %q lacks organization %q", cn, NodesOrganization)
}

// checkNodeName accepts Kubernetes node names (DNS subdomains).
func checkNodeName(name string) error {
	if name == "" {
		return errors.New("empty node name")
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("invalid node name %q: %s", name, errs[0])
	}
	return nil
}

// checkProjectID accepts the short token KubeEdge uses; it ends up in URL paths and logs.
func checkProjectID(id string) error {
	if id == "" || len(id) > maxProjectIDLength {
		return fmt.Errorf("invalid project id: length %d", len(id))
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("invalid project id %q", id)
		}
	}
	return nil
}

// authorize is the identity check both servers make: the requested node must be the
// certificate's node.
func authorize(cert *x509.Certificate, nodeName, projectID string) error {
	certNode, err := NodeNameFromCertificate(cert)
	if err != nil {
		return err
	}
	if err := checkNodeName(nodeName); err != nil {
		return err
	}
	if err := checkProjectID(projectID); err != nil {
		return err
	}
	if nodeName != certNode {
		return fmt.Errorf("certificate is for node %q, request names node %q", certNode, nodeName)
	}
	return nil
}

// truncateReason keeps a close reason within a transport's limit without splitting a rune.
func truncateReason(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// deadline returns the earlier of now+d and ctx's deadline.
func deadline(ctx context.Context, d time.Duration) time.Time {
	t := time.Now().Add(d)
	if cd, ok := ctx.Deadline(); ok && cd.Before(t) {
		return cd
	}
	return t
}

// pastTime makes every pending read or write fail at once; used to honour cancellation.
func pastTime() time.Time { return time.Unix(1, 0) }

// maxRetainedBuffer caps the per-connection encode buffer kept between writes, so one large
// message does not pin its memory for the life of the connection.
const maxRetainedBuffer = 64 << 10

func retain(buf []byte) []byte {
	if cap(buf) > maxRetainedBuffer {
		return nil
	}
	return buf[:0]
}

// readLimited reads at most n bytes of an error body for a refusal message.
func readLimited(r io.Reader, n int64) string {
	b, _ := io.ReadAll(io.LimitReader(r, n))
	return strings.TrimSpace(string(b))
}
