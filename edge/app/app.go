// Package app wires edgecore's modules together: the store, MetaServer, the node status
// reporter, the node's identity and EdgeHub. It is the one place that knows every module
// (architecture principle 1); the modules only know the interfaces they are given.
//
// Start-up order and why:
//  1. The store opens first: it is the edge's truth (principle 3) and must be usable, or
//     nothing else is worth starting.
//  2. MetaServer and the node status reporter start next. Neither needs the cloud: the
//     MetaServer serves the store (writes answer 503 until the hub is connected) and the
//     reporter queues registration, status and heartbeats in the durable outbox. A node
//     restarted while the cloud is away therefore serves its local API at once.
//  3. The node certificate is loaded from <dataDir>/certs. Only when none exists does the
//     join token matter: the node bootstraps once with it and from then on authenticates
//     with its certificate, so the token can be removed from the configuration. A cloud
//     that cannot be reached yet (connection refused, timeout, a TLS handshake failing at the
//     transport level, a 5xx) is retried with the hub's backoff until ctx is done; a refusal
//     (a 4xx such as a wrong token, a CA that does not match the token's hash, a serving
//     certificate not valid for the address) stops Run at once with its message. An expired
//     certificate cannot be renewed (renewal authenticates with it), so Run stops with the
//     recovery steps instead of retrying for ever.
//  4. EdgeHub and the certificate renewal loop run until ctx is done. The hub's dialer reads
//     the client certificate through tls.Config.GetClientCertificate from a holder that the
//     renewal loop swaps, so the next dial presents the renewed certificate without
//     rebuilding the hub. A session already open keeps the certificate it was opened with;
//     that is fine because renewal happens at 70–90 % of the certificate's lifetime.
//
// Every module runs under one context; the first that fails stops the others, and all of
// them have returned before the store closes.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/skerry-io/skerry/edge/certs"
	"github.com/skerry-io/skerry/edge/config"
	"github.com/skerry-io/skerry/edge/cri"
	"github.com/skerry-io/skerry/edge/hub"
	"github.com/skerry-io/skerry/edge/metaserver"
	"github.com/skerry-io/skerry/edge/nodestatus"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/internal/memtrim"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/version"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Renewal retry bounds: a failed renewal is retried with a doubling delay in this range, and
// never later than the certificate's expiry.
const (
	renewRetryMin = 10 * time.Second
	renewRetryMax = 10 * time.Minute
)

// releaseStartupPagesAfter is how long after start edgecore releases its start-up pages.
const releaseStartupPagesAfter = 30 * time.Second

// ErrNoToken: the node has no certificate and the configuration has no join token.
var ErrNoToken = errors.New("hub.token: the node has no certificate yet and no join token is configured; " +
	"get one with `keadm gettoken` on the cloud and set hub.token")

// Run runs edgecore until ctx is done (SIGTERM), then stops every goroutine it started,
// closes the store and returns nil. It returns an error if start-up fails.
func Run(ctx context.Context, cfg *config.EdgeCore, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("node", cfg.NodeName)

	db, err := store.Open(ctx, cfg.DataDir, store.Options{Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()

	runtime, err := cri.New(cfg.Runtime.Endpoint)
	if err != nil {
		return fmt.Errorf("runtime.endpoint: %w", err)
	}
	defer runtime.Close()

	// Everything started from here stops before the runtime client and the store close
	// (defers run in reverse).
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := func(name string, run func(context.Context) error) {
		wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		})
	}

	// The local API and the node status need no cloud: they start before joining, so a node
	// restarted while the cloud is away serves its store at once.
	fw := &forwarder{}
	if cfg.MetaServer.Enable {
		ms, err := metaserver.New(metaserver.Config{
			Address:     cfg.MetaServer.Address,
			AllowRemote: cfg.MetaServer.AllowRemote,
			Store:       metaStore{db},
			Forwarder:   fw,
			Logger:      log.With("component", "metaserver"),
		})
		if err != nil {
			return fmt.Errorf("metaServer: %w", err)
		}
		start("metaserver", ms.Run)
	}
	reporter, err := nodestatus.New(cfg.NodeStatus(), nodestatus.Deps{
		Outbox: db.Outbox(),
		Notify: func() {
			if h := fw.hub.Load(); h != nil {
				h.Notify()
			}
		},
		Runtime:        runtime,
		KubeletVersion: kubeletVersion(),
		Logger:         log.With("component", "nodestatus"),
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	start("nodestatus", reporter.Run)
	notify := func() {
		if h := fw.hub.Load(); h != nil {
			h.Notify()
		}
	}
	if cfg.Edged.Enable {
		if err := startEdged(ctx, start, cfg, db, runtime, reporter, notify, log); err != nil {
			return err
		}
	}
	if err := startDevices(start, cfg, db, notify, log); err != nil {
		return err
	}
	// Start-up code and data stay mapped for good unless released (internal/memtrim); by
	// then every module has started and the first join or connection has been tried.
	start("memtrim", func(ctx context.Context) error {
		memtrim.After(ctx, releaseStartupPagesAfter, log)
		return nil
	})

	creds, err := Credentials(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
				return cause
			}
			// Stopped while still trying to join: a normal stop, not a failure.
			log.Info("edgecore stopped before joining the cloud", "lastErr", err)
			return nil
		}
		return err
	}
	id := newIdentity(creds)

	host, _, err := net.SplitHostPort(cfg.Hub.Server)
	if err != nil {
		return fmt.Errorf("hub.server: %w", err)
	}
	tlsCfg := creds.ClientTLSConfig(host)
	tlsCfg.Certificates = nil
	tlsCfg.GetClientCertificate = id.clientCertificate
	dialer, err := hub.NewDialer(cfg.Hub.Protocol, transport.DialConfig{
		Addr:      cfg.Hub.Server,
		NodeName:  cfg.NodeName,
		ProjectID: cfg.Hub.ProjectID,
		TLS:       tlsCfg,
		Options:   transport.Options{Logger: log},
	})
	if err != nil {
		return err
	}
	h, err := hub.New(hub.Config{
		NodeName:          cfg.NodeName,
		Dialer:            dialer,
		Outbox:            db.Outbox(),
		Inventory:         db,
		Applier:           applier{db},
		KeepaliveInterval: cfg.Hub.KeepaliveInterval.Duration,
		Backoff:           hub.Backoff{Base: cfg.Hub.Backoff.Base.Duration, Max: cfg.Hub.Backoff.Max.Duration},
	}, log)
	if err != nil {
		return err
	}
	fw.hub.Store(h)
	h.Notify() // what the node status queued before the hub existed

	log.Info("edgecore running", "server", cfg.Hub.Server, "protocol", cfg.Hub.Protocol,
		"dataDir", cfg.DataDir, "metaServer", cfg.MetaServer.Address, "certExpires", creds.Node.Cert.NotAfter)
	start("edgehub", h.Run)
	start("certificate renewal", func(ctx context.Context) error { return renewLoop(ctx, cfg, id, log) })
	<-ctx.Done()
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("edgecore stopped", "err", err)
		return err
	}
	log.Info("edgecore stopped")
	return nil
}

// kubeletVersion is what the node reports as its kubelet version: the Kubernetes release the
// node speaks, then ours, as KubeEdge does ("v1.36.3-kubeedge-v1.x").
func kubeletVersion() string {
	return "v1.36.3-skerry-" + strings.TrimPrefix(version.Get().GitVersion, "v")
}

// Credentials returns the node's certificate: the stored one, or, if there is none yet, one
// obtained with the join token from hub.bootstrapServer. Joining is retried with the hub's
// backoff while the cloud cannot be reached (see joinRetryable); if ctx ends first the error
// wraps both the last failure and ctx's cause.
func Credentials(ctx context.Context, cfg *config.EdgeCore, log *slog.Logger) (*certs.Credentials, error) {
	creds, err := certs.Load(cfg.DataDir)
	switch {
	case err == nil:
		log.Info("loaded node certificate", "dir", certs.Dir(cfg.DataDir), "expires", creds.Node.Cert.NotAfter)
		return creds, nil
	case errors.Is(err, certs.ErrCertExpired):
		// The message says how to recover: a new token and a new join.
		return nil, err
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("loading the node certificate: %w", err)
	case cfg.Hub.Token == "":
		return nil, ErrNoToken
	}
	addr := cfg.Hub.BootstrapAddr()
	log.Info("no node certificate yet, joining the cloud with the configured token", "bootstrapServer", addr)
	backoff := hub.Backoff{Base: cfg.Hub.Backoff.Base.Duration, Max: cfg.Hub.Backoff.Max.Duration}
	timer := time.NewTimer(0)
	timer.Stop()
	defer timer.Stop()
	for failures := 0; ; failures++ {
		creds, err = certs.Bootstrap(ctx, addr, cfg.Hub.Token, cfg.NodeName, cfg.DataDir)
		if err == nil {
			break
		}
		err = fmt.Errorf("joining the cloud at %s (hub.bootstrapServer): %w", addr, err)
		if ctx.Err() != nil {
			return nil, errors.Join(err, context.Cause(ctx))
		}
		if !joinRetryable(err) {
			return nil, err
		}
		delay := backoff.Delay(failures)
		log.Warn("cannot reach the cloud to join, will retry", "err", err, "retryIn", delay, "failures", failures+1)
		timer.Reset(delay)
		select {
		case <-ctx.Done():
			return nil, errors.Join(err, context.Cause(ctx))
		case <-timer.C:
		}
	}
	log.Info("joined the cloud; hub.token is no longer needed and can be removed from the configuration",
		"expires", creds.Node.Cert.NotAfter)
	return creds, nil
}

// joinRetryable tells a cloud that cannot be reached yet (connection refused or reset, a
// timeout, a TLS handshake that fails at the transport level, a 5xx answer) from a refusal:
// a 4xx answer, a CA that does not match the token's hash, a serving certificate not valid
// for the configured address, a malformed token or a local failure. Retrying a refusal
// cannot help (a wrong token will not become right), so it ends start-up with its message.
func joinRetryable(err error) bool {
	var se *certs.StatusError
	var he x509.HostnameError
	switch {
	case errors.As(err, &se):
		return se.Code >= 500
	case errors.Is(err, certs.ErrCAMismatch), errors.As(err, &he):
		return false
	}
	var opErr *net.OpError
	var recErr tls.RecordHeaderError
	var alert tls.AlertError
	var urlErr *url.Error
	return errors.As(err, &opErr) || errors.As(err, &recErr) || errors.As(err, &alert) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &urlErr) && urlErr.Timeout())
}

// applier adapts the store to hub.Applier.
type applier struct{ db *store.DB }

func (a applier) Apply(ctx context.Context, m *wire.Message) error { return a.db.ApplyMessage(ctx, m) }

// identity holds the node's current credentials for every TLS handshake.
type identity struct {
	creds atomic.Pointer[certs.Credentials]
}

func newIdentity(c *certs.Credentials) *identity {
	id := &identity{}
	id.creds.Store(c)
	return id
}

func (id *identity) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c := id.creds.Load()
	return &tls.Certificate{
		Certificate: [][]byte{c.Node.Cert.Raw},
		PrivateKey:  c.Node.Key,
		Leaf:        c.Node.Cert,
	}, nil
}

// renewLoop renews the node certificate at certs.RenewAt and hands the new one to the dialer,
// retrying failures with a growing delay. It returns nil when ctx is done, and an error
// wrapping certs.ErrCertExpired if the certificate expired before a renewal succeeded: the
// node can then no longer authenticate, and only a new join recovers it.
func renewLoop(ctx context.Context, cfg *config.EdgeCore, id *identity, log *slog.Logger) error {
	addr := cfg.Hub.BootstrapAddr()
	timer := time.NewTimer(0)
	timer.Stop()
	defer timer.Stop()
	retry := renewRetryMin
	at := certs.RenewAt(id.creds.Load().Node.Cert, nil)
	for {
		log.Info("certificate renewal scheduled", "at", at, "bootstrapServer", addr)
		timer.Reset(time.Until(at))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		creds, err := certs.Renew(ctx, addr, cfg.DataDir)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			id.creds.Store(creds)
			retry = renewRetryMin
			at = certs.RenewAt(creds.Node.Cert, nil)
			log.Info("renewed node certificate; the next connection uses it", "expires", creds.Node.Cert.NotAfter)
			continue
		}
		if errors.Is(err, certs.ErrCertExpired) {
			return err // certs.Load's message carries the recovery steps
		}
		expires := id.creds.Load().Node.Cert.NotAfter
		now := time.Now()
		if !now.Before(expires) {
			return fmt.Errorf("%w at %s before it could be renewed (last attempt: %v); get a new token with `keadm gettoken` "+
				"on the cloud, remove %s and start edgecore with hub.token set",
				certs.ErrCertExpired, expires.UTC().Format(time.RFC3339), err, certs.Dir(cfg.DataDir))
		}
		at = now.Add(retry)
		if at.After(expires) {
			at = expires // the next round then reports the expiry
		}
		log.Warn("certificate renewal failed, will retry", "err", err, "retryAt", at, "expires", expires)
		retry = min(2*retry, renewRetryMax)
	}
}
