package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"

	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

// rig is a hub serving WebSocket and QUIC on 127.0.0.1 with an empty desired set and an
// upstream that accepts everything.
type rig struct {
	ca       *pki.CA
	hub      *hub.Hub
	obs      *connCount
	wsAddr   string
	quicAddr string
	cancel   context.CancelFunc
	done     chan error
}

type acceptAll struct{}

func (acceptAll) Handle(context.Context, string, *wire.Message) (json.RawMessage, error) {
	return nil, nil
}

type emptyDesired struct{}

func (emptyDesired) Desired(context.Context, string) (map[wire.Key]hub.Object, error) {
	return nil, nil
}

// connCount counts connected nodes.
type connCount struct {
	mu sync.Mutex
	n  int
}

func (c *connCount) NodeConnected(string, hub.SessionInfo) { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *connCount) NodeDisconnected(string, string)       { c.mu.Lock(); c.n--; c.mu.Unlock() }
func (c *connCount) count() int                            { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// startRig starts a hub with cfg (Upstream, Desired and Observer are set here) on wsAddr and
// quicAddr ("127.0.0.1:0" for any port).
func startRig(ca *pki.CA, cfg hub.Config, wsAddr, quicAddr string) (*rig, error) {
	srvKP, err := ca.IssueServer("cloudcore", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	srvCert, err := transport.Certificate(srvKP)
	if err != nil {
		return nil, err
	}
	serverTLS, err := transport.ServerTLSConfig(srvCert, ca.Pool())
	if err != nil {
		return nil, err
	}
	r := &rig{ca: ca, obs: &connCount{}, done: make(chan error, 1)}
	cfg.Upstream, cfg.Desired, cfg.Observer = acceptAll{}, emptyDesired{}, r.obs
	if r.hub, err = hub.New(cfg, nil); err != nil {
		return nil, err
	}
	ws, err := transport.ListenWebSocket(transport.ServerConfig{Addr: wsAddr, TLS: serverTLS, Handler: r.hub.ServeConn})
	if err != nil {
		return nil, err
	}
	qs, err := transport.ListenQUIC(transport.ServerConfig{Addr: quicAddr, TLS: serverTLS, Handler: r.hub.ServeConn})
	if err != nil {
		_ = ws.Close()
		return nil, err
	}
	r.wsAddr, r.quicAddr = ws.Addr().String(), qs.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.hub.Run(ctx, ws, qs) }()
	return r, nil
}

func (r *rig) addr(protocol string) string {
	if protocol == transport.ProtocolQUIC {
		return r.quicAddr
	}
	return r.wsAddr
}

func (r *rig) stop() error {
	r.cancel()
	if err := <-r.done; err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}
