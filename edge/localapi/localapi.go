// Package localapi is what edgecore's local HTTP APIs (MetaServer, the kubelet-style API)
// share. They have no authentication, so they listen on loopback only and refuse requests
// whose Host header names anything else, unless the operator explicitly allows remote access;
// and they log every request the same way.
package localapi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// CheckAddress refuses a listen address whose host is not a loopback IP or "localhost".
// what names the API in the error.
func CheckAddress(what, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: address %q: %w", what, addr, err)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("%s: address %q is not loopback; the API has no authentication, set allowRemote to expose it anyway", what, addr)
	}
	return nil
}

// HostOnly refuses requests whose Host header is not a loopback address or "localhost": a web
// page the node's browser loads could otherwise reach the API through DNS rebinding (a name
// of the attacker's that resolves to 127.0.0.1) and read what it serves.
func HostOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if !isLoopbackHost(host) {
			http.Error(w, "only loopback hosts are served (allowRemote is off)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LogRequests logs every request at debug level, when it ends (streams included).
func LogRequests(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		log.Debug("request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery,
			"code", rec.code, "duration", time.Since(start))
	})
}

// statusRecorder remembers the response code for the request log; Unwrap keeps
// http.ResponseController (flush, hijack, write deadlines) working through it.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// NewServer is the http.Server every local API uses: header and idle limits, and the
// server's own errors logged at debug level. No WriteTimeout: watches, followed logs and exec
// sessions last as long as their client.
func NewServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// Shutdown stops srv gracefully within ctx, closing what is still open when ctx ends first;
// the error says the graceful part timed out.
func Shutdown(ctx context.Context, srv *http.Server, log *slog.Logger) error {
	err := srv.Shutdown(ctx)
	if err != nil {
		log.Warn("graceful shutdown timed out, closing connections", "err", err)
		_ = srv.Close()
	}
	return err
}
