package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/skerry-io/skerry/cloud/bootstrap"
	"github.com/skerry-io/skerry/pkg/pki"
)

// cloud is a bootstrap server on a real loopback TLS socket.
type cloud struct {
	ca    *pki.CA
	store *bootstrap.SecretStore
	addr  string
}

func newCloud(t *testing.T, servingIPs []net.IP, servingDNS []string) *cloud {
	t.Helper()
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "cloudcore-ca"})
	if err != nil {
		t.Fatal(err)
	}
	store := bootstrap.NewSecretStore(fake.NewClientset(), "")
	srv, err := bootstrap.NewServer(bootstrap.Config{CA: ca, Tokens: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.IssueServer("cloudcore", servingDNS, servingIPs)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(srv)
	ts.TLS = srv.TLSConfig(tls.Certificate{Certificate: [][]byte{serving.Cert.Raw}, PrivateKey: serving.Key})
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected in some tests
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &cloud{ca: ca, store: store, addr: ts.Listener.Addr().String()}
}

func loopback() []net.IP { return []net.IP{net.IPv4(127, 0, 0, 1)} }

func (c *cloud) token(t *testing.T, opts bootstrap.TokenOptions, now time.Time) string {
	t.Helper()
	tok, err := bootstrap.CreateToken(context.Background(), c.store, c.ca.Cert, opts, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok.String()
}

func statusOf(t *testing.T, err error) *StatusError {
	t.Helper()
	var se *StatusError
	if !errors.As(err, &se) {
		t.Fatalf("want a StatusError, got %v", err)
	}
	return se
}

func TestBootstrap(t *testing.T) {
	c := newCloud(t, loopback(), nil)
	dir := t.TempDir()
	creds, err := Bootstrap(context.Background(), c.addr, c.token(t, bootstrap.TokenOptions{}, time.Now()), "edge-1", dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{CAFile: 0o644, CertFile: 0o644, KeyFile: 0o600} {
		fi, err := os.Stat(filepath.Join(dir, "certs", name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Node.Cert.Equal(creds.Node.Cert) || !loaded.CA.Equal(c.ca.Cert) {
		t.Fatal("stored files differ from what Bootstrap returned")
	}
	if err := c.ca.Verify(loaded.Node.Cert, pki.UsageClient, time.Now()); err != nil {
		t.Fatal(err)
	}
	if s := loaded.Node.Cert.Subject; s.CommonName != "system:node:edge-1" || len(s.Organization) != 1 || s.Organization[0] != "system:nodes" {
		t.Fatalf("subject %s", s)
	}
}

func TestBootstrapTokenRefused(t *testing.T) {
	c := newCloud(t, loopback(), nil)
	ctx := context.Background()

	expired := c.token(t, bootstrap.TokenOptions{TTL: time.Hour}, time.Now().Add(-2*time.Hour))
	_, err := Bootstrap(ctx, c.addr, expired, "edge-1", t.TempDir())
	if se := statusOf(t, err); se.Code != 401 || !strings.Contains(se.Message, "expired at") || !strings.Contains(se.Message, "keadm gettoken") {
		t.Errorf("expired: %v", err)
	}

	revoked := c.token(t, bootstrap.TokenOptions{}, time.Now())
	parsed, _ := bootstrap.ParseToken(revoked)
	if err := c.store.Revoke(ctx, parsed.ID); err != nil {
		t.Fatal(err)
	}
	_, err = Bootstrap(ctx, c.addr, revoked, "edge-1", t.TempDir())
	if se := statusOf(t, err); se.Code != 401 || !strings.Contains(se.Message, "revoked") {
		t.Errorf("revoked: %v", err)
	}

	bound := c.token(t, bootstrap.TokenOptions{NodeName: "edge-2"}, time.Now())
	_, err = Bootstrap(ctx, c.addr, bound, "edge-1", t.TempDir())
	if se := statusOf(t, err); se.Code != 403 || !strings.Contains(se.Message, `bound to node "edge-2"`) {
		t.Errorf("bound: %v", err)
	}
	if _, err := Bootstrap(ctx, c.addr, bound, "edge-2", t.TempDir()); err != nil {
		t.Errorf("bound token refused for its own node: %v", err)
	}

	dir := t.TempDir()
	if _, err := Bootstrap(ctx, c.addr, "abc", "edge-1", dir); err == nil {
		t.Error("malformed token accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "certs")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused join wrote files")
	}
}

func TestSingleUseToken(t *testing.T) {
	c := newCloud(t, loopback(), nil)
	ctx := context.Background()
	tok := c.token(t, bootstrap.TokenOptions{SingleUse: true}, time.Now())
	if _, err := Bootstrap(ctx, c.addr, tok, "edge-1", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	_, err := Bootstrap(ctx, c.addr, tok, "edge-2", t.TempDir())
	if se := statusOf(t, err); se.Code != 401 {
		t.Fatalf("second use: %v", err)
	}
}

func TestSingleUseTokenRace(t *testing.T) {
	c := newCloud(t, loopback(), nil)
	tok := c.token(t, bootstrap.TokenOptions{SingleUse: true}, time.Now())
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = Bootstrap(context.Background(), c.addr, tok, "edge-1", t.TempDir())
		})
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if se := statusOf(t, err); se.Code != 401 {
			t.Errorf("loser got %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d joins won with one single-use token, want 1 (%v)", wins, errs)
	}
}

func TestCAHashMismatch(t *testing.T) {
	c := newCloud(t, loopback(), nil)
	other := newCloud(t, loopback(), nil)
	_, err := Bootstrap(context.Background(), c.addr, other.token(t, bootstrap.TokenOptions{}, time.Now()), "edge-1", t.TempDir())
	if !errors.Is(err, ErrCAMismatch) || !strings.Contains(err.Error(), "another cloudcore") {
		t.Fatalf("got %v", err)
	}
}

func TestServingCertSANMismatch(t *testing.T) {
	c := newCloud(t, nil, []string{"cloud.example.com"})
	_, err := Bootstrap(context.Background(), c.addr, c.token(t, bootstrap.TokenOptions{}, time.Now()), "edge-1", t.TempDir())
	if err == nil {
		t.Fatal("joined although the serving certificate does not cover 127.0.0.1")
	}
	for _, want := range []string{`"127.0.0.1"`, "cloud.example.com", "advertise"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestRenew(t *testing.T) {
	c := newCloud(t, loopback(), nil)
	dir := t.TempDir()
	first, err := Bootstrap(context.Background(), c.addr, c.token(t, bootstrap.TokenOptions{SingleUse: true}, time.Now()), "edge-1", dir)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := Renew(context.Background(), "https://"+c.addr, dir)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Node.Cert.Equal(first.Node.Cert) || renewed.Node.Key.Public().(*ecdsa.PublicKey).Equal(first.Node.Key.Public()) {
		t.Fatal("renewal kept the old certificate or key")
	}
	loaded, err := Load(dir)
	if err != nil || !loaded.Node.Cert.Equal(renewed.Node.Cert) || loaded.Node.Cert.Subject.CommonName != "system:node:edge-1" {
		t.Fatalf("after renewal: %v", err)
	}
}

// A node cannot use its certificate to obtain one for another node.
func TestRenewAsOtherNodeRefused(t *testing.T) {
	c := newCloud(t, loopback(), nil)
	dir := t.TempDir()
	if _, err := Bootstrap(context.Background(), c.addr, c.token(t, bootstrap.TokenOptions{}, time.Now()), "edge-2", dir); err != nil {
		t.Fatal(err)
	}
	creds, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: creds.ClientTLSConfig("")}}
	defer client.CloseIdleConnections()
	base, _ := baseURL(c.addr)
	_, err = requestCert(context.Background(), client, base, mustP256(t), "edge-1", "")
	if se := statusOf(t, err); se.Code != 403 {
		t.Fatalf("got %v", err)
	}
}

func TestLoadExpired(t *testing.T) {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "ca"})
	if err != nil {
		t.Fatal(err)
	}
	key := mustP256(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "system:node:edge-1", Organization: []string{"system:nodes"}},
		NotBefore:    time.Now().Add(-48 * time.Hour),
		NotAfter:     time.Now().Add(-time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	dir := t.TempDir()
	if err := store(dir, &Credentials{CA: ca.Cert, Node: &pki.KeyPair{Cert: cert, Key: key}}); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir)
	if !errors.Is(err, ErrCertExpired) || !strings.Contains(err.Error(), "keadm gettoken") || !strings.Contains(err.Error(), "hub.token") {
		t.Fatalf("got %v", err)
	}
}

func TestRenewAt(t *testing.T) {
	now := time.Now()
	cert := &x509.Certificate{NotBefore: now, NotAfter: now.Add(365 * 24 * time.Hour)}
	life := cert.NotAfter.Sub(cert.NotBefore)
	lo, hi := now.Add(life*7/10), now.Add(life*9/10)
	rnd := mrand.New(mrand.NewPCG(1, 2))
	var minSeen, maxSeen time.Time
	for i := range 10000 {
		r := rnd
		if i%2 == 1 {
			r = nil // the default source must obey the same bounds
		}
		at := RenewAt(cert, r)
		if at.Before(lo) || at.After(hi) {
			t.Fatalf("RenewAt = %v outside [%v, %v]", at, lo, hi)
		}
		if minSeen.IsZero() || at.Before(minSeen) {
			minSeen = at
		}
		if at.After(maxSeen) {
			maxSeen = at
		}
	}
	// Jitter really spreads renewals over the window.
	if maxSeen.Sub(minSeen) < life/10 {
		t.Fatalf("renewal times spread over only %v", maxSeen.Sub(minSeen))
	}
}

func TestCAEndpointBodyLimit(t *testing.T) {
	// A hostile "cloud" cannot make the edge read an unbounded CA.
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.CopyN(w, zeroReader{}, maxCertSize+10)
	}))
	defer ts.Close()
	_, err := Bootstrap(context.Background(), ts.Listener.Addr().String(), strings.Repeat("a", 64)+".x.y", "edge-1", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func mustP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
