// Package server is Edged's kubelet-style local API: container logs, exec/attach/port-forward
// (proxied to the runtime's streaming server), resource stats and metrics, and the node's pods,
// on the kubelet's paths and query parameters so that kubectl-shaped clients, metrics-server and
// the cloud's tunnel can use it unchanged.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/skerry-io/skerry/edge/localapi"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Defaults.
const (
	// DefaultAddress is loopback only: the API has no authentication of its own.
	DefaultAddress = "127.0.0.1:10350"
	// DefaultMaxBodyBytes caps request bodies: no endpoint here takes one, so anything large
	// is a mistake or an attack.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultShutdownTimeout bounds Run's graceful shutdown.
	DefaultShutdownTimeout = 5 * time.Second
	// DefaultCallTimeout bounds each unary CRI call, so a hung runtime fails the request
	// rather than holding it forever.
	DefaultCallTimeout = 10 * time.Second
	// DefaultLogPollInterval is how often a followed log file is polled for new lines.
	DefaultLogPollInterval = 250 * time.Millisecond
	// DefaultProcRoot is where host CPU and memory figures are read.
	DefaultProcRoot = "/proc"
	// DefaultRootDir is the filesystem reported as the node's fs.
	DefaultRootDir = "/"
)

// Config configures a Server. Runtime is required.
type Config struct {
	// Address to listen on; DefaultAddress when empty.
	Address string
	// AllowRemote permits a non-loopback Address and non-loopback Host headers. Anything that
	// reaches this API can read every container's logs and run commands in it.
	AllowRemote bool
	Runtime     runtimeapi.RuntimeServiceClient
	// Pods returns the pods bound to this node; nil means none.
	Pods     func() []*corev1.Pod
	NodeName string
	Logger   *slog.Logger // nil discards

	MaxBodyBytes    int64         // ≤ 0: DefaultMaxBodyBytes
	ShutdownTimeout time.Duration // ≤ 0: DefaultShutdownTimeout
	CallTimeout     time.Duration // ≤ 0: DefaultCallTimeout
	LogPollInterval time.Duration // ≤ 0: DefaultLogPollInterval
	// ContainerCheckInterval is how often a followed log checks whether its container
	// still runs; ≤ 0: four poll intervals.
	ContainerCheckInterval time.Duration
	ProcRoot               string // "": DefaultProcRoot
	RootDir                string // "": DefaultRootDir
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the kubelet-style API. Create it with New.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler
	// stopCtx ends when shutdown begins, so followed logs and proxied streams (which
	// never go idle) end and the shutdown can finish.
	stopCtx context.Context
	stop    context.CancelFunc
	// active counts running handlers, hijacked streams included, which http.Server.Shutdown
	// does not wait for.
	active sync.WaitGroup
	served atomic.Bool
	stats  *cpuSamples
	// streamTransport reaches the runtime's streaming server.
	streamTransport *http.Transport
	errLog          *log.Logger
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Runtime == nil {
		return nil, errors.New("edged server: Config.Runtime is required")
	}
	if cfg.Address == "" {
		cfg.Address = DefaultAddress
	}
	if !cfg.AllowRemote {
		if err := localapi.CheckAddress("edged server", cfg.Address); err != nil {
			return nil, err
		}
	}
	if cfg.Pods == nil {
		cfg.Pods = func() []*corev1.Pod { return nil }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.LogPollInterval <= 0 {
		cfg.LogPollInterval = DefaultLogPollInterval
	}
	if cfg.ContainerCheckInterval <= 0 {
		cfg.ContainerCheckInterval = 4 * cfg.LogPollInterval
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	if cfg.RootDir == "" {
		cfg.RootDir = DefaultRootDir
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg:             cfg,
		log:             cfg.Logger.With("component", "edged-server"),
		stats:           newCPUSamples(),
		streamTransport: newStreamTransport(),
	}
	s.errLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	var h http.Handler = http.HandlerFunc(s.route)
	h = s.limitBody(h)
	h = s.recoverer(h)
	if !cfg.AllowRemote {
		h = localapi.HostOnly(h)
	}
	h = s.track(h)
	s.handler = localapi.LogRequests(s.log, h)
	return s, nil
}

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// Run listens on the configured address and serves until ctx ends, then shuts down
// gracefully within ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("edged server: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln (which it closes) until ctx ends. A Server serves at most once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.served.CompareAndSwap(false, true) {
		_ = ln.Close()
		return errors.New("edged server: Serve called twice")
	}
	srv := localapi.NewServer(s.handler, s.log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("serving", "address", ln.Addr().String())
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	s.stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := localapi.Shutdown(sctx, srv, s.log)
	if serveErr == nil {
		<-errc // http.ErrServerClosed
	}
	// Hijacked streams end once stopCtx ends; wait for them, within the same bound.
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		s.log.Warn("streams still open after shutdown timeout")
	}
	s.streamTransport.CloseIdleConnections()
	s.log.Info("stopped")
	if serveErr != nil {
		return fmt.Errorf("edged server: serve: %w", serveErr)
	}
	if err != nil {
		return fmt.Errorf("edged server: shutdown: %w", err)
	}
	return nil
}

// requestContext is r's context, also cancelled when shutdown begins.
func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	unregister := context.AfterFunc(s.stopCtx, cancel)
	return ctx, func() { unregister(); cancel() }
}

// route dispatches by the kubelet's paths.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch p {
	case "/healthz":
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
		return
	case "/pods", "/pods/":
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		s.servePods(w)
		return
	case "/stats/summary", "/stats/summary/":
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		s.serveSummary(w, r)
		return
	case "/metrics/resource", "/metrics/resource/":
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		s.serveResourceMetrics(w, r)
		return
	}
	seg := strings.Split(strings.Trim(p, "/"), "/")
	switch seg[0] {
	case "containerLogs":
		if !allowMethods(w, r, http.MethodGet) {
			return
		}
		if len(seg) != 4 {
			writeStatus(w, http.StatusNotFound, "the server could not find the requested resource")
			return
		}
		s.serveLogs(w, r, seg[1], seg[2], seg[3])
		return
	case "exec", "attach":
		if !allowMethods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		// The kubelet also serves /{verb}/{namespace}/{pod}/{uid}/{container}.
		var uid, container string
		switch len(seg) {
		case 4:
			container = seg[3]
		case 5:
			uid, container = seg[3], seg[4]
		default:
			writeStatus(w, http.StatusNotFound, "the server could not find the requested resource")
			return
		}
		s.serveStream(w, r, seg[0], seg[1], seg[2], uid, container)
		return
	case "portForward":
		if !allowMethods(w, r, http.MethodGet, http.MethodPost) {
			return
		}
		var uid string
		switch len(seg) {
		case 3:
		case 4:
			uid = seg[3]
		default:
			writeStatus(w, http.StatusNotFound, "the server could not find the requested resource")
			return
		}
		s.servePortForward(w, r, seg[1], seg[2], uid)
		return
	}
	writeStatus(w, http.StatusNotFound, "the server could not find the requested resource")
}

// allowMethods answers 405 unless r's method is one of ms.
func allowMethods(w http.ResponseWriter, r *http.Request, ms ...string) bool {
	for _, m := range ms {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(ms, ", "))
	writeStatus(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed", r.Method))
	return false
}

// servePods answers the pods bound to this node, as the kubelet's /pods does.
func (s *Server) servePods(w http.ResponseWriter) {
	list := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: []corev1.Pod{}}
	for _, p := range s.cfg.Pods() {
		if p != nil {
			list.Items = append(list.Items, *p)
		}
	}
	writeJSON(w, http.StatusOK, &list)
}

// findPod returns the pod namespace/name from Pods().
func (s *Server) findPod(namespace, name string) *corev1.Pod {
	for _, p := range s.cfg.Pods() {
		if p != nil && p.Namespace == namespace && p.Name == name {
			return p
		}
	}
	return nil
}

// hasContainer says whether the pod's spec names the container (any kind).
func hasContainer(pod *corev1.Pod, name string) bool {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return true
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return true
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return true
		}
	}
	return false
}

// statusError is an error with the HTTP code to answer it with.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &statusError{code: code, msg: fmt.Sprintf(format, args...)}
}

// writeError answers err as a Status; errors without a code are 500s.
func writeError(w http.ResponseWriter, err error) {
	var se *statusError
	if errors.As(err, &se) {
		writeStatus(w, se.code, se.msg)
		return
	}
	writeStatus(w, http.StatusInternalServerError, err.Error())
}

// writeStatus answers a Kubernetes Status, which kubectl and the apiserver decode.
func writeStatus(w http.ResponseWriter, code int, msg string) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   reasonFor(code),
		Code:     int32(code),
	}
	writeJSON(w, code, &st)
}

func reasonFor(code int) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusForbidden:
		return metav1.StatusReasonForbidden
	case http.StatusNotFound:
		return metav1.StatusReasonNotFound
	case http.StatusMethodNotAllowed:
		return metav1.StatusReasonMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return metav1.StatusReasonRequestEntityTooLarge
	case http.StatusServiceUnavailable:
		return metav1.StatusReasonServiceUnavailable
	case http.StatusGatewayTimeout:
		return metav1.StatusReasonTimeout
	default:
		return metav1.StatusReasonInternalError
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"encoding failed","reason":"InternalError","code":500}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// limitBody caps request bodies; no endpoint reads one, but a proxied POST forwards it.
func (s *Server) limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.cfg.MaxBodyBytes {
			writeStatus(w, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		h.ServeHTTP(w, r)
	})
}

// track counts in-flight handlers so Serve can wait for hijacked streams.
func (s *Server) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.active.Add(1)
		defer s.active.Done()
		h.ServeHTTP(w, r)
	})
}

// recoverer turns a panic in a handler into a 500 rather than a dropped connection.
// http.ErrAbortHandler is passed on.
func (s *Server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeStatus(w, http.StatusInternalServerError, "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// callCtx bounds one unary CRI call.
func (s *Server) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.CallTimeout)
}
