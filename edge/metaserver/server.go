package metaserver

import (
	"context"
	"errors"
	"fmt"
	"github.com/skerry-io/skerry/edge/localapi"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/skerry-io/skerry/pkg/wire"
)

// Defaults.
const (
	DefaultAddress = "127.0.0.1:10550"
	// DefaultMaxBodyBytes caps a write's body: the apiserver's own limit is 3 MiB.
	DefaultMaxBodyBytes = 3 << 20
	// DefaultWatchTimeout bounds a watch whose client asked for no timeoutSeconds; clients
	// rewatch from their last resourceVersion, which keeps long-lived connections fresh.
	DefaultWatchTimeout = 30 * time.Minute
	// DefaultBookmarkInterval is how often a watch that allows bookmarks gets one.
	DefaultBookmarkInterval = time.Minute
	// DefaultShutdownTimeout bounds the graceful shutdown of Run.
	DefaultShutdownTimeout = 5 * time.Second
	// DefaultWriteTimeout bounds a forwarded write's round trip to the cloud.
	DefaultWriteTimeout = 30 * time.Second
)

// Config configures a Server. Store is required; without a Forwarder every write answers 503.
type Config struct {
	// Address to listen on; DefaultAddress when empty.
	Address string
	// AllowRemote permits a non-loopback Address. The metaserver has no authentication or
	// authorization: anything that can reach it reads every secret the node holds and writes
	// as the node. Only loopback keeps that to the node itself.
	AllowRemote bool
	Store       Store
	Forwarder   Forwarder
	Logger      *slog.Logger // nil discards

	MaxBodyBytes     int64         // ≤ 0: DefaultMaxBodyBytes
	WatchTimeout     time.Duration // ≤ 0: DefaultWatchTimeout
	BookmarkInterval time.Duration // ≤ 0: DefaultBookmarkInterval
	ShutdownTimeout  time.Duration // ≤ 0: DefaultShutdownTimeout
	WriteTimeout     time.Duration // ≤ 0: DefaultWriteTimeout
	// Now is the clock for Age columns; nil means time.Now.
	Now func() time.Time
}

// Server is the metaserver. Create it with New; it serves until Run's context ends.
type Server struct {
	cfg     Config
	log     *slog.Logger
	cat     *catalog
	handler http.Handler
	// stopping is closed when shutdown begins, so that watches (which never go idle) end and
	// http.Server.Shutdown can finish.
	stopping chan struct{}
	served   atomic.Bool
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("metaserver: Config.Store is required")
	}
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if !cfg.AllowRemote {
		if err := localapi.CheckAddress("metaserver", cfg.Address); err != nil {
			return nil, err
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.WatchTimeout <= 0 {
		cfg.WatchTimeout = DefaultWatchTimeout
	}
	if cfg.BookmarkInterval <= 0 {
		cfg.BookmarkInterval = DefaultBookmarkInterval
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "metaserver"), cat: newCatalog(), stopping: make(chan struct{})}
	s.handler = localapi.LogRequests(s.log, s.recoverer(http.HandlerFunc(s.route)))
	if !cfg.AllowRemote {
		s.handler = localapi.HostOnly(s.handler)
	}
	return s, nil
}

// Handler returns the HTTP handler (for tests and embedding). Watches served through it end
// when their client goes or Run/Serve shuts down.
func (s *Server) Handler() http.Handler { return s.handler }

// Run listens on the configured address and serves until ctx ends, then shuts down
// gracefully within ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("metaserver: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (which it closes) until ctx ends. A Server serves at most once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.served.CompareAndSwap(false, true) {
		_ = ln.Close()
		return errors.New("metaserver: Serve called twice")
	}
	srv := localapi.NewServer(s.handler, s.log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("serving", "address", ln.Addr().String())
	select {
	case err := <-errc:
		close(s.stopping)
		return fmt.Errorf("metaserver: serve: %w", err)
	case <-ctx.Done():
	}
	close(s.stopping)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := localapi.Shutdown(sctx, srv, s.log)
	<-errc // http.ErrServerClosed
	s.log.Info("stopped")
	if err != nil {
		return fmt.Errorf("metaserver: shutdown: %w", err)
	}
	return nil
}

// recoverer turns a panic in a handler into a 500 instead of a dropped connection and a crash
// of the listener goroutine's bookkeeping. http.ErrAbortHandler is passed on.
func (s *Server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeStatus(w, errors.New("panic"))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// route dispatches by path: health, discovery, then resources.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch p {
	case "/healthz", "/readyz", "/livez":
		s.serveHealth(w, r)
		return
	}
	if s.serveDiscovery(w, r) {
		return
	}
	if !strings.HasPrefix(p, "/api/") && !strings.HasPrefix(p, "/apis/") {
		writeStatus(w, notFoundPath())
		return
	}
	ri, err := parsePath(p)
	if err != nil {
		writeStatus(w, notFoundPath())
		return
	}
	res := s.cat.lookup(ri.gv, ri.resource)
	if res == nil || (ri.namespace != "" && !res.namespaced) {
		writeStatus(w, notFoundPath())
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.serveRead(w, r, res, ri)
	default:
		s.serveWrite(w, r, res, ri)
	}
}

// serveHealth answers ok once the store answers; the metaserver has no other dependency
// (the cloud being away is normal at the edge).
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if r.URL.Path == "/readyz" {
		if _, _, err := s.cfg.Store.List(ctx, wire.TypeNode, ""); err != nil {
			s.log.Warn("readiness: store list failed", "err", err)
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok"))
}
