// Command skerry-demo is the small web app used in demos and end-to-end tests: it shows what the
// pod it runs in looks like from inside (hostname, downward-API env vars, all env vars and a mounted
// config file), so a test can check env injection and ConfigMap mounts with one HTTP GET.
//
// Build it static: CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// version is set at build time with -ldflags '-X main.version=...'.
var version = "dev"

const (
	defaultPort       = "8080"
	defaultConfigFile = "/etc/skerry-demo/config"
	// maxConfigBytes bounds how much of the config file is read and shown: the file comes from
	// outside the container (a mounted ConfigMap), so it may be arbitrarily large.
	maxConfigBytes = 64 << 10
	shutdownGrace  = 10 * time.Second
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if err := run(log); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	port := os.Getenv("PORT")
	if port == "" {
		port = defaultPort
	}
	configFile := os.Getenv("CONFIG_FILE")
	if configFile == "" {
		configFile = defaultConfigFile
	}
	app := &app{
		configFile: configFile,
		environ:    os.Environ,
		hostname:   os.Hostname,
		log:        log,
	}
	srv := &http.Server{
		Addr:              net.JoinHostPort("", port),
		Handler:           app.routes(),
		ReadHeaderTimeout: 10 * time.Second,
	}

	// PID 1 in a container: SIGTERM is how the runtime asks us to stop.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	// GRPC_PORT, when set, adds the gRPC health service (for grpc probes).
	if gp := os.Getenv("GRPC_PORT"); gp != "" {
		gln, err := net.Listen("tcp", net.JoinHostPort("", gp))
		if err != nil {
			return err
		}
		defer serveGRPCHealth(gln, log).GracefulStop()
	}
	log.Info("listening", "addr", ln.Addr().String(), "version", version, "config_file", configFile)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// app holds what the handlers read from the process environment; tests replace the functions.
type app struct {
	configFile string
	environ    func() []string
	hostname   func() (string, error)
	log        *slog.Logger
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.index)
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	return a.logRequests(mux)
}

func ok(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

func (a *app) index(w http.ResponseWriter, _ *http.Request) {
	var b strings.Builder
	host, err := a.hostname()
	if err != nil {
		host = "unknown (" + err.Error() + ")"
	}
	env := a.environ()
	lookup := func(key string) string {
		// Last one wins, as with os.Getenv.
		v := "(unset)"
		for _, kv := range env {
			if k, val, ok := strings.Cut(kv, "="); ok && k == key {
				v = val
			}
		}
		return v
	}
	fmt.Fprintf(&b, "skerry-demo %s\n\n", version)
	fmt.Fprintf(&b, "hostname:      %s\n", host)
	fmt.Fprintf(&b, "pod name:      %s\n", lookup("POD_NAME"))
	fmt.Fprintf(&b, "pod namespace: %s\n", lookup("POD_NAMESPACE"))
	fmt.Fprintf(&b, "pod IP:        %s\n", lookup("POD_IP"))

	sorted := slices.Clone(env)
	slices.Sort(sorted)
	fmt.Fprintf(&b, "\nenvironment (%d):\n", len(sorted))
	for _, kv := range sorted {
		fmt.Fprintf(&b, "  %s\n", kv)
	}

	fmt.Fprintf(&b, "\nconfig file %s:\n", a.configFile)
	b.WriteString(readConfig(a.configFile))

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, b.String())
}

// readConfig returns the config file's content, at most maxConfigBytes of it, or a one-line note
// saying why there is none.
func readConfig(path string) string {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "not mounted\n"
	}
	if err != nil {
		return fmt.Sprintf("unreadable: %v\n", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return fmt.Sprintf("unreadable: %v\n", err)
	}
	truncated := len(data) > maxConfigBytes
	if truncated {
		data = data[:maxConfigBytes]
	}
	s := string(data)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	if truncated {
		s += fmt.Sprintf("[truncated at %d bytes]\n", maxConfigBytes)
	}
	return s
}

// statusRecorder remembers the status code and body size for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += n
	return n, err
}

func (a *app) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, req)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		a.log.Info("request",
			"method", req.Method,
			"path", req.URL.Path,
			"status", rec.status,
			"bytes", rec.bytes,
			"remote", req.RemoteAddr,
			"duration", time.Since(start).String(),
		)
	})
}
