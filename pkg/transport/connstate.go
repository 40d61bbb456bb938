package transport

import (
	"crypto/x509"
	"log/slog"
	"sync"
)

// connState is what every Conn implementation holds besides its socket: the authenticated peer,
// the options, and the closed signal that Read and Write check first.
type connState struct {
	opts      Options
	node      string
	project   string
	cert      *x509.Certificate
	log       *slog.Logger
	closeOnce sync.Once
	closed    chan struct{}
}

func newConnState(opts Options, node, project string, cert *x509.Certificate, log *slog.Logger) connState {
	return connState{opts: opts, node: node, project: project, cert: cert, log: log, closed: make(chan struct{})}
}

func (c *connState) NodeName() string                   { return c.node }
func (c *connState) ProjectID() string                  { return c.project }
func (c *connState) PeerCertificate() *x509.Certificate { return c.cert }

func (c *connState) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}
