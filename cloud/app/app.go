// Package app wires cloudcore together: the Kubernetes client, the CA and serving certificate
// kept in Secrets (package ca), the bootstrap HTTPS service, CloudHub with its WebSocket and
// QUIC servers, EdgeController (the node graph, its informers, the service-account tokens and
// the upstream handlers behind the node authorizer), DeviceController (Devices and
// DeviceModels into the same graph), and the admin endpoint (/healthz, /readyz, /metrics,
// /debug/nodes).
package app

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skerry-io/skerry/cloud/bootstrap"
	"github.com/skerry-io/skerry/cloud/ca"
	"github.com/skerry-io/skerry/cloud/config"
	"github.com/skerry-io/skerry/cloud/devicecontroller"
	"github.com/skerry-io/skerry/cloud/edgecontroller"
	"github.com/skerry-io/skerry/cloud/edgecontroller/authz"
	"github.com/skerry-io/skerry/cloud/edgecontroller/graph"
	"github.com/skerry-io/skerry/cloud/edgecontroller/tokens"
	"github.com/skerry-io/skerry/cloud/edgecontroller/upstream"
	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/cloud/hub/queue"
	"github.com/skerry-io/skerry/pkg/client/clientset/versioned"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

const (
	// shutdownTimeout bounds how long HTTP servers wait for requests in flight on shutdown.
	shutdownTimeout = 3 * time.Second
	// pruneInterval is how often expired join tokens are deleted.
	pruneInterval = time.Hour
)

// Run runs cloudcore until ctx is cancelled or a component fails.
func Run(ctx context.Context, cfg *config.CloudCore, log *slog.Logger) error {
	client, devices, err := NewClients(cfg.KubeAPI)
	if err != nil {
		return err
	}
	a, err := New(ctx, cfg, client, devices, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// NewClients builds the Kubernetes client and the device API client from the kubeconfig file
// named in cfg, or from the in-cluster service account when it names none. They share the
// connection settings, not the rate limit.
func NewClients(cfg config.KubeAPI) (kubernetes.Interface, versioned.Interface, error) {
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kubeAPI: %w", err)
	}
	rc.QPS = cfg.QPS
	rc.Burst = cfg.Burst
	rc.UserAgent = "skerry-cloudcore"
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeAPI: %w", err)
	}
	devices, err := versioned.NewForConfig(rc)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeAPI: device client: %w", err)
	}
	return kube, devices, nil
}

// App is a cloudcore whose listeners are open; [App.Run] serves them.
type App struct {
	cfg    *config.CloudCore
	log    *slog.Logger
	tokens *bootstrap.SecretStore

	hub       *hub.Hub
	ctrl      *edgecontroller.Controller
	devices   *devicecontroller.Controller
	podTokens *tokens.Manager
	authz     *authz.Authorizer
	upstream  *upstream.Handler
	hubSrvs   []transport.Server
	bootLn    net.Listener
	bootSrv   *http.Server
	adminLn   net.Listener
	adminSrv  *http.Server
	// The autonomy webhook, when enabled.
	admLn     net.Listener
	admSrv    *http.Server
	admHook   *admissionregistrationv1.MutatingWebhookConfiguration
	client    kubernetes.Interface
	nodes     *nodeSet
	ready     atomic.Bool
	closeOnce sync.Once
}

// New prepares the namespace, CA and serving certificate and opens every listener, so a
// port in use fails here, before anything is served. devices is the device API client.
func New(ctx context.Context, cfg *config.CloudCore, client kubernetes.Interface, devices versioned.Interface, log *slog.Logger) (*App, error) {
	if devices == nil {
		return nil, errors.New("app: the device API client is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ns := cfg.Namespace
	if err := ca.EnsureNamespace(ctx, client, ns); err != nil {
		return nil, err
	}
	authority, created, err := ca.EnsureCA(ctx, client, ns)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created CA", "secret", ns+"/"+ca.CASecretName, "notAfter", authority.Cert.NotAfter)
	}
	ips, err := advertiseIPs(cfg.Bootstrap.AdvertiseAddresses)
	if err != nil {
		return nil, err
	}
	serving, reason, err := ca.EnsureServing(ctx, client, ns, authority, ca.ServingRequest(ips, cfg.Bootstrap.DNSNames), time.Now())
	if err != nil {
		return nil, err
	}
	if reason != "" {
		log.Info("issued serving certificate", "secret", ns+"/"+ca.ServingSecretName, "reason", reason,
			"ips", serving.Cert.IPAddresses, "dnsNames", serving.Cert.DNSNames)
	}
	servingCert, err := transport.Certificate(serving)
	if err != nil {
		return nil, err
	}

	a := &App{cfg: cfg, log: log, tokens: bootstrap.NewSecretStore(client, ns), nodes: newNodeSet(log)}
	ok := false
	defer func() {
		if !ok {
			a.closeListeners()
		}
	}()

	bs, err := bootstrap.NewServer(bootstrap.Config{
		CA:           authority,
		Tokens:       a.tokens,
		CertValidity: cfg.Bootstrap.CertValidity.Duration,
		Logger:       log.With("component", "bootstrap"),
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Bootstrap.Address)
	if err != nil {
		return nil, fmt.Errorf("bootstrap.address: %w", err)
	}
	a.bootLn = tls.NewListener(ln, bs.TLSConfig(servingCert))
	a.bootSrv = &http.Server{Handler: bs, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}

	// The controller queues through the hub, and the hub resyncs from the controller: the
	// sink is filled in once the hub exists, before anything runs.
	sink := &hubSink{}
	a.podTokens = tokens.New(tokens.Config{
		Client:    client,
		Logger:    log.With("component", "tokens"),
		OnRefresh: func(ns, pod string) { a.ctrl.TokensRefreshed(ns, pod) },
	})
	// DeviceController feeds the graph EdgeController reconciles from; it needs the graph
	// before the controller exists, and the controller's trigger after.
	g := graph.New()
	a.devices, err = devicecontroller.New(devicecontroller.Config{
		Client: devices, Graph: g, Logger: log,
		Changed: func(node string) { a.ctrl.NodeChanged(node) },
	})
	if err != nil {
		return nil, err
	}
	a.ctrl, err = edgecontroller.New(edgecontroller.Config{
		Client: client, Hub: sink, Tokens: a.podTokens, Devices: a.devices, Graph: g, Logger: log,
		NodeGone: func(node string) { a.upstream.ForgetNode(node) },
	})
	if err != nil {
		return nil, err
	}
	a.authz = authz.New(scope{a.ctrl}, log.With("component", "authz"))
	a.upstream, err = upstream.New(upstream.Config{
		Client: client, Devices: devices, Authorizer: a.authz, Objects: a.ctrl, Logger: log.With("component", "upstream"),
	})
	if err != nil {
		return nil, err
	}
	a.hub, err = hub.New(hub.Config{
		Upstream:         a.upstream,
		Desired:          a.ctrl,
		Observer:         a.nodes,
		MaxNodes:         cfg.Hub.NodeLimit,
		KeepaliveTimeout: cfg.Hub.KeepaliveTimeout.Duration,
		SendRate:         cfg.Hub.RateLimit.QPS,
		SendBurst:        cfg.Hub.RateLimit.Burst,
	}, log.With("component", "cloudhub"))
	if err != nil {
		return nil, err
	}
	sink.hub = a.hub
	hubTLS, err := transport.ServerTLSConfig(servingCert, authority.Pool())
	if err != nil {
		return nil, err
	}
	opts := transport.Options{Logger: log.With("component", "transport")}
	if cfg.Hub.WebSocket.Enable {
		s, err := transport.ListenWebSocket(transport.ServerConfig{Addr: cfg.Hub.WebSocket.Address, TLS: hubTLS, Handler: a.hub.ServeConn, Options: opts})
		if err != nil {
			return nil, fmt.Errorf("hub.websocket.address: %w", err)
		}
		a.hubSrvs = append(a.hubSrvs, s)
	}
	if cfg.Hub.QUIC.Enable {
		s, err := transport.ListenQUIC(transport.ServerConfig{Addr: cfg.Hub.QUIC.Address, TLS: hubTLS, Handler: a.hub.ServeConn, Options: opts})
		if err != nil {
			return nil, fmt.Errorf("hub.quic.address: %w", err)
		}
		a.hubSrvs = append(a.hubSrvs, s)
	}

	a.client = client
	if cfg.Admission.Enable {
		if err := a.listenAdmission(authority, servingCert, ips); err != nil {
			return nil, err
		}
	}

	a.adminLn, err = net.Listen("tcp", cfg.Admin.Address)
	if err != nil {
		return nil, fmt.Errorf("admin.address: %w", err)
	}
	a.adminSrv = &http.Server{Handler: a.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	ok = true
	return a, nil
}

// Addrs are the bound addresses, by role: "websocket", "quic", "bootstrap", "admin".
func (a *App) Addrs() map[string]net.Addr {
	m := map[string]net.Addr{"bootstrap": a.bootLn.Addr(), "admin": a.adminLn.Addr()}
	for _, s := range a.hubSrvs {
		switch s.(type) {
		case *transport.WebSocketServer:
			m["websocket"] = s.Addr()
		case *transport.QUICServer:
			m["quic"] = s.Addr()
		}
	}
	return m
}

// ConnectedNodes returns the names of the connected nodes, sorted.
func (a *App) ConnectedNodes() []string { return a.nodes.list() }

// Close releases the listeners of an App whose Run is never called.
func (a *App) Close() { a.closeListeners() }

func (a *App) closeListeners() {
	a.closeOnce.Do(func() {
		for _, s := range a.hubSrvs {
			_ = s.Close()
		}
		if a.bootLn != nil {
			_ = a.bootLn.Close()
		}
		if a.adminLn != nil {
			_ = a.adminLn.Close()
		}
		if a.admLn != nil {
			_ = a.admLn.Close()
		}
	})
}

// Run serves until ctx is cancelled or a component fails, then stops every component and
// returns after all of its goroutines ended. It may be called once.
func (a *App) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 16) // more than the components, so no failure ever blocks
	run := func(name string, f func() error) {
		wg.Go(func() {
			err := f()
			if err != nil && ctx.Err() == nil {
				a.log.Error("component failed, stopping cloudcore", "component", name, "err", err)
				errc <- fmt.Errorf("%s: %w", name, err)
			}
			cancel()
		})
	}
	run("admin", func() error { return serveHTTP(ctx, a.adminSrv, a.adminLn) })
	run("bootstrap", func() error { return serveHTTP(ctx, a.bootSrv, a.bootLn) })
	run("cloudhub", func() error { return a.hub.Run(ctx, a.hubSrvs...) })
	run("edgecontroller", func() error { return a.ctrl.Run(ctx) })
	run("devicecontroller", func() error { return a.devices.Run(ctx) })
	run("tokens", func() error { a.podTokens.Run(ctx); return nil })
	if a.admSrv != nil {
		run("admission", func() error { return serveHTTP(ctx, a.admSrv, a.admLn) })
		// Registration ends once done, so it is not a component whose end stops cloudcore.
		wg.Go(func() { a.registerWebhook(ctx) })
	}
	run("token-pruner", func() error { a.pruneTokens(ctx); return nil })
	a.ready.Store(true)
	attrs := []any{}
	for role, addr := range a.Addrs() {
		attrs = append(attrs, role, addr.String())
	}
	a.log.Info("cloudcore serving", attrs...)

	<-ctx.Done()
	a.ready.Store(false)
	wg.Wait() // the servers closed their listeners
	a.log.Info("cloudcore stopped")
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// serveHTTP serves ln until ctx is done, then shuts the server down gracefully.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (a *App) pruneTokens(ctx context.Context) {
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	for {
		if n, err := a.tokens.Prune(ctx, time.Now()); err != nil && ctx.Err() == nil {
			a.log.Warn("pruning expired join tokens failed", "err", err)
		} else if n > 0 {
			a.log.Info("pruned expired join tokens", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *App) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if !a.ctrl.Synced() {
			http.Error(w, "not ready: informers not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /metrics", a.metrics)
	mux.HandleFunc("GET /debug/nodes", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.nodes.list())
	})
	return mux
}

// advertiseIPs parses the configured addresses or, when there are none, lists this host's
// non-loopback interface addresses.
func advertiseIPs(configured []string) ([]net.IP, error) {
	var ips []net.IP
	if len(configured) > 0 {
		for _, s := range configured {
			ips = append(ips, net.ParseIP(s)) // validated by config
		}
		return ips, nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("bootstrap.advertiseAddresses is empty and the host's addresses are unknown (%w): set it", err)
	}
	for _, addr := range addrs {
		if n, ok := addr.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			ips = append(ips, n.IP)
		}
	}
	return ips, nil
}

// hubSink forwards the controller's queueing to the hub, which is created after the
// controller because each needs the other.
type hubSink struct{ hub *hub.Hub }

func (s *hubSink) Upsert(node string, key wire.Key, v queue.Version, msg *wire.Message) error {
	return s.hub.Upsert(node, key, v, msg)
}

func (s *hubSink) Delete(node string, key wire.Key, uid string, msg *wire.Message) error {
	return s.hub.Delete(node, key, uid, msg)
}

// scope is the node graph as the authorizer sees it.
type scope struct{ c *edgecontroller.Controller }

func (s scope) Allows(node string, key wire.Key) bool { return s.c.Graph().Allows(node, key) }

func (s scope) PodNode(namespace, name string) (string, bool) {
	return s.c.Graph().NodeOf(namespace, name)
}

func (s scope) Device(namespace, name string) (node, uid string, ok bool) {
	return s.c.Graph().Device(namespace, name)
}

// nodeSet is the SessionObserver: it logs connects and disconnects and keeps the set of
// connected nodes for /debug/nodes.
type nodeSet struct {
	log   *slog.Logger
	mu    sync.Mutex
	nodes map[string]hub.SessionInfo
}

func newNodeSet(log *slog.Logger) *nodeSet {
	return &nodeSet{log: log, nodes: make(map[string]hub.SessionInfo)}
}

func (s *nodeSet) NodeConnected(node string, info hub.SessionInfo) {
	s.mu.Lock()
	s.nodes[node] = info
	s.mu.Unlock()
	s.log.Info("edge node connected", "node", node, "protocol", info.Protocol, "remote", info.RemoteAddr)
}

func (s *nodeSet) NodeDisconnected(node string, reason string) {
	s.mu.Lock()
	delete(s.nodes, node)
	s.mu.Unlock()
	s.log.Info("edge node disconnected", "node", node, "reason", reason)
}

func (s *nodeSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.nodes))
	for n := range s.nodes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
