package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skerry-io/skerry/cloud/bootstrap"
	"github.com/skerry-io/skerry/edge/certs"
	"github.com/skerry-io/skerry/pkg/pki"
	"k8s.io/client-go/kubernetes/fake"
)

const joinRetryMsg = "cannot reach the cloud to join, will retry"

// logRecorder is a slog handler that keeps every record's message and "err" attribute.
type logRecorder struct {
	mu      sync.Mutex
	records []string // message, then " err=" and the error if any
	changed chan struct{}
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{}, 1)} }

func (l *logRecorder) logger() *slog.Logger { return slog.New(l) }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b bytes.Buffer
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			b.WriteString(" err=" + a.Value.String())
		}
		return true
	})
	l.mu.Lock()
	l.records = append(l.records, b.String())
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return nil
}

// wait waits until n records start with msg and returns the first of them.
func (l *logRecorder) wait(t *testing.T, msg string, n int) string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		l.mu.Lock()
		var found []string
		for _, r := range l.records {
			if strings.HasPrefix(r, msg) {
				found = append(found, r)
			}
		}
		l.mu.Unlock()
		if len(found) >= n {
			return found[0]
		}
		select {
		case <-l.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %d log records %q, have %d", n, msg, len(found))
		}
	}
}

// bootstrapServer is cloud/bootstrap's server with a fake clientset behind its token store,
// served over TLS with a certificate from ca for 127.0.0.1.
type bootstrapServer struct {
	tokens *bootstrap.SecretStore
	ts     *httptest.Server
}

// newBootstrapServer starts the server on addr ("" for any free port) with tokens (nil: a new
// store over a fake clientset).
func newBootstrapServer(t *testing.T, ca *pki.CA, tokens *bootstrap.SecretStore, addr string) *bootstrapServer {
	t.Helper()
	if tokens == nil {
		tokens = bootstrap.NewSecretStore(fake.NewClientset(), "")
	}
	b := &bootstrapServer{tokens: tokens}
	srv, err := bootstrap.NewServer(bootstrap.Config{CA: ca, Tokens: b.tokens, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueServer("cloudcore", nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b.ts = httptest.NewUnstartedServer(srv)
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("%s was taken meanwhile: %v", addr, err)
		}
		_ = b.ts.Listener.Close()
		b.ts.Listener = ln
	}
	b.ts.TLS = srv.TLSConfig(tls.Certificate{Certificate: [][]byte{serving.Cert.Raw}, PrivateKey: serving.Key})
	b.ts.StartTLS()
	t.Cleanup(b.ts.Close)
	return b
}

func (b *bootstrapServer) addr() string { return b.ts.Listener.Addr().String() }

func (b *bootstrapServer) token(t *testing.T, ca *pki.CA) bootstrap.Token {
	t.Helper()
	tok, err := bootstrap.CreateToken(context.Background(), b.tokens, ca.Cert, bootstrap.TokenOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestJoinRetriesUntilTheCloudIsUp: the bootstrap server is not listening when edgecore
// starts (connection refused), then its port accepts connections and closes them before any
// TLS handshake (a server not ready yet), then it comes up: the join is retried through all of
// that, succeeds, and the node connects to the hub with the certificate the bootstrap server
// issued.
func TestJoinRetriesUntilTheCloudIsUp(t *testing.T) {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "test-ca"})
	if err != nil {
		t.Fatal(err)
	}
	fc := newFakeCloud(t, ca, true)
	cfg := testConfig(t, fc.addr)
	cfg.Hub.BootstrapServer = freeAddr(t)
	// A token for the server that will come up: the token store lives outside the server.
	tokens := bootstrap.NewSecretStore(fake.NewClientset(), "")
	tok, err := bootstrap.CreateToken(context.Background(), tokens, ca.Cert, bootstrap.TokenOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Hub.Token = tok.String()

	logs := newLogRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, logs.logger()) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after cancel = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()
	logs.wait(t, joinRetryMsg, 2) // connection refused

	// Then something accepts connections but is not ready to speak TLS: it closes each one.
	ln, err := net.Listen("tcp", cfg.Hub.BootstrapServer)
	if err != nil {
		t.Skipf("the reserved port was taken meanwhile: %v", err)
	}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	logs.wait(t, joinRetryMsg, 5)
	_ = ln.Close()
	<-accepted
	logs.mu.Lock()
	records := slices.Clone(logs.records)
	logs.mu.Unlock()
	if !slices.ContainsFunc(records, func(r string) bool {
		return strings.HasPrefix(r, joinRetryMsg) && (strings.Contains(r, "EOF") || strings.Contains(r, "connection reset"))
	}) {
		t.Fatalf("no retried failure from the not-ready server among %q", records)
	}

	newBootstrapServer(t, ca, tokens, cfg.Hub.BootstrapServer)

	select {
	case serial := <-fc.serials:
		creds, err := certs.Load(cfg.DataDir)
		if err != nil {
			t.Fatalf("credentials after join: %v", err)
		}
		if creds.Node.Cert.SerialNumber.Cmp(serial) != 0 {
			t.Fatalf("hub saw serial %v, the joined certificate has %v", serial, creds.Node.Cert.SerialNumber)
		}
	case err := <-done:
		t.Fatalf("Run returned %v before connecting", err)
	case <-time.After(15 * time.Second):
		t.Fatal("edgecore did not connect after the bootstrap server came up")
	}
}

// TestJoinRefusalStopsAtOnce: a wrong token is answered 401; retrying cannot fix it, so Run
// returns promptly with the server's message, naming hub.bootstrapServer and not the secret.
func TestJoinRefusalStopsAtOnce(t *testing.T) {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "test-ca"})
	if err != nil {
		t.Fatal(err)
	}
	b := newBootstrapServer(t, ca, nil, "")
	tok := b.token(t, ca)
	tok.Secret = strings.Repeat("0", len(tok.Secret)) // the right id, a wrong secret
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.Hub.BootstrapServer = b.addr()
	cfg.Hub.Token = tok.String()
	logs := newLogRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err = Run(ctx, cfg, logs.logger())
	if ctx.Err() != nil {
		t.Fatalf("Run kept retrying a refused join (err %v)", err)
	}
	var se *certs.StatusError
	if !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("Run = %v, want a 401 StatusError", err)
	}
	if !strings.Contains(err.Error(), "hub.bootstrapServer") || strings.Contains(err.Error(), tok.Secret) {
		t.Fatalf("Run = %v, want it to name hub.bootstrapServer and not the secret", err)
	}
	if se.Message == "" || !strings.Contains(err.Error(), se.Message) {
		t.Fatalf("Run = %v, want the server's message", err)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for _, r := range logs.records {
		if strings.HasPrefix(r, joinRetryMsg) {
			t.Fatalf("refused join was retried (%q) after %v", r, time.Since(start))
		}
	}
}

// TestJoinCAMismatchStopsAtOnce: a token pinning another CA is a refusal too.
func TestJoinCAMismatchStopsAtOnce(t *testing.T) {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "test-ca"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA(pki.CAConfig{CommonName: "other-ca"})
	if err != nil {
		t.Fatal(err)
	}
	b := newBootstrapServer(t, ca, nil, "")
	tok := b.token(t, ca)
	tok.CAHash = bootstrap.CAHash(other.Cert)
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.Hub.BootstrapServer = b.addr()
	cfg.Hub.Token = tok.String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Run(ctx, cfg, quiet())
	if ctx.Err() != nil || !errors.Is(err, certs.ErrCAMismatch) {
		t.Fatalf("Run = %v (ctx %v), want ErrCAMismatch at once", err, ctx.Err())
	}
}

// writeShortCreds stores a node certificate from ca that is valid for life from now (no
// backdating, so RenewAt falls 70–90 % into life) and returns it.
func writeShortCreds(t *testing.T, dataDir string, ca *pki.CA, life time.Duration) *x509.Certificate {
	t.Helper()
	writeCreds(t, dataDir, ca) // ca.crt and the directory
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
		NotBefore:    now,
		NotAfter:     now.Add(life),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	dir := certs.Dir(dataDir)
	if err := pki.WriteKeyPair(filepath.Join(dir, certs.CertFile), filepath.Join(dir, certs.KeyFile), &pki.KeyPair{Cert: cert, Key: key}); err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestRenewalBeforeExpiryAndNextConnectionUsesIt: the node certificate lives 4 s. Run renews
// it through the bootstrap server before it expires; when the cloud then drops the connection
// the edge reconnects presenting the renewed certificate (the cloud sees its serial).
func TestRenewalBeforeExpiryAndNextConnectionUsesIt(t *testing.T) {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "test-ca"})
	if err != nil {
		t.Fatal(err)
	}
	fc := newFakeCloud(t, ca, true)
	b := newBootstrapServer(t, ca, nil, "")
	cfg := testConfig(t, fc.addr)
	cfg.Hub.BootstrapServer = b.addr()
	const life = 4 * time.Second
	short := writeShortCreds(t, cfg.DataDir, ca, life)

	stop := startEdge(t, cfg)
	select {
	case s := <-fc.serials:
		if s.Cmp(short.SerialNumber) != 0 {
			t.Fatalf("first connection presented serial %v, want the short-lived %v", s, short.SerialNumber)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("edgecore did not connect")
	}

	// Wait for the renewed certificate on disk.
	var renewed *x509.Certificate
	deadline := time.Now().Add(2 * life)
	for {
		creds, err := certs.Load(cfg.DataDir)
		if err == nil && creds.Node.Cert.SerialNumber.Cmp(short.SerialNumber) != 0 {
			renewed = creds.Node.Cert
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate not renewed (last load: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !time.Now().Before(short.NotAfter) {
		t.Fatalf("renewal seen only after the old certificate expired at %v", short.NotAfter)
	}
	if !renewed.NotAfter.After(short.NotAfter) {
		t.Fatalf("renewed certificate expires %v, not after the old one's %v", renewed.NotAfter, short.NotAfter)
	}

	fc.dropConnections()
	select {
	case s := <-fc.serials:
		if s.Cmp(renewed.SerialNumber) != 0 {
			t.Fatalf("reconnection presented serial %v, want the renewed %v", s, renewed.SerialNumber)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("edgecore did not reconnect")
	}
	stop()
}

func TestJoinRetryable(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("joining the cloud at x (hub.bootstrapServer): %w", err) }
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"401", wrap(&certs.StatusError{Code: 401, Message: "bad token"}), false},
		{"403", wrap(&certs.StatusError{Code: 403, Message: "no"}), false},
		{"503", wrap(&certs.StatusError{Code: 503, Message: "starting"}), true},
		{"CA mismatch", wrap(fmt.Errorf("%w (cloud at x)", certs.ErrCAMismatch)), false},
		{"host name", wrap(&url.Error{Op: "Post", URL: "https://x", Err: x509.HostnameError{Host: "x"}}), false},
		{"refused", wrap(&url.Error{Op: "Get", URL: "https://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}), true},
		{"EOF in handshake", wrap(&url.Error{Op: "Get", URL: "https://x", Err: io.EOF}), true},
		{"not TLS", wrap(&url.Error{Op: "Get", URL: "https://x", Err: tls.RecordHeaderError{Msg: "not TLS"}}), true},
		{"client timeout", wrap(&url.Error{Op: "Get", URL: "https://x", Err: context.DeadlineExceeded}), true},
		{"malformed token", errors.New("malformed join token"), false},
		{"disk", wrap(fmt.Errorf("create certs: %w", syscall.EACCES)), false},
	} {
		if got := joinRetryable(c.err); got != c.want {
			t.Errorf("%s: joinRetryable(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
