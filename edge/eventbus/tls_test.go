package eventbus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// testServerName is a DNS name in the broker's certificate besides its IP address, so
// that TLSConfig.ServerName can be checked.
const testServerName = "mqtt.edge.test"

// testCA is a throwaway certificate authority whose files live in a test's temp dir.
type testCA struct {
	t      *testing.T
	dir    string
	name   string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	caFile string
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := certTemplate(t, name)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{t: t, dir: dir, name: name, cert: cert, key: key, caFile: filepath.Join(dir, name+"-ca.pem")}
	writePEM(t, ca.caFile, "CERTIFICATE", der)
	return ca
}

// issue signs a leaf certificate and writes it and its key as PEM files named after name.
func (ca *testCA) issue(name string, usage x509.ExtKeyUsage, ips []net.IP, dnsNames []string) (certFile, keyFile string) {
	t := ca.t
	t.Helper()
	key := newKey(t)
	tmpl := certTemplate(t, name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	tmpl.IPAddresses, tmpl.DNSNames = ips, dnsNames
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("issue %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(ca.dir, ca.name+"-"+name+".pem")
	keyFile = filepath.Join(ca.dir, ca.name+"-"+name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func certTemplate(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour), // the broker's clock is ours, but be lenient
		NotAfter:     now.Add(time.Hour),
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsBroker is a mosquitto with a TLS listener that requires a client certificate from
// ca, and the files a client needs to reach it.
type tlsBroker struct {
	*mosquitto
	ca                    *testCA
	clientCert, clientKey string // signed by ca, CN edgecore-test
}

func startTLSMosquitto(t *testing.T) *tlsBroker {
	t.Helper()
	dir := t.TempDir()
	ca := newTestCA(t, dir, "good")
	serverCert, serverKey := ca.issue("server", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{testServerName})
	clientCert, clientKey := ca.issue("edgecore-test", x509.ExtKeyUsageClientAuth, nil, nil)
	// Anonymous clients are refused: a client gets in only with a certificate, whose CN
	// becomes its user name.
	m := startMosquitto(t, fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\nuse_identity_as_username true\nallow_anonymous false",
		ca.caFile, serverCert, serverKey))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", m.logText())
		}
	})
	tb := &tlsBroker{mosquitto: m, ca: ca, clientCert: clientCert, clientKey: clientKey}
	tb.waitHandshake()
	return tb
}

// waitHandshake waits until the broker completes a TLS handshake: startMosquitto only
// waits for the port to accept TCP.
func (tb *tlsBroker) waitHandshake() {
	t := tb.t
	t.Helper()
	tc := tb.clientTLS()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tb.port))
	deadline := time.Now().Add(testTimeout)
	for {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: tc}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := d.DialContext(ctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS handshake with mosquitto on %s within %s: %v", addr, testTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clientTLS is what a well-configured app uses.
func (tb *tlsBroker) clientTLS() *tls.Config {
	t := tb.t
	t.Helper()
	pair, err := tls.LoadX509KeyPair(tb.clientCert, tb.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(tb.ca.cert)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

func (tb *tlsBroker) tlsURL(scheme string) string {
	return scheme + "://127.0.0.1:" + strconv.Itoa(tb.port)
}

// TestExternalTLSExchangesMessages: edgecore connects over TLS with its client
// certificate, with each TLS scheme, and exchanges messages with an app on the broker.
func TestExternalTLSExchangesMessages(t *testing.T) {
	tb := startTLSMosquitto(t)
	app := appClient(t, tb.tlsURL("ssl"), "tls-app", func(o *paho.ClientOptions) { o.SetTLSConfig(tb.clientTLS()) })

	for _, tc := range []struct{ scheme, serverName string }{
		{"ssl", ""},
		{"mqtts", ""},
		{"tls", testServerName}, // the DNS name checked instead of the URL's IP address
		{"tcps", ""},
	} {
		t.Run(tc.scheme, func(t *testing.T) {
			cfg := externalConfig(tb.tlsURL(tc.scheme))
			cfg.External.ClientID = "edgecore-" + tc.scheme
			cfg.External.TLS = TLSConfig{CAFile: tb.ca.caFile, CertFile: tb.clientCert, KeyFile: tb.clientKey, ServerName: tc.serverName}
			b := startBus(t, cfg)
			waitConnects(t, b, 1)

			in, out := "tls/"+tc.scheme+"/in", "tls/"+tc.scheme+"/out"
			got := newRecorder()
			unsub, err := b.Subscribe(in, got.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer unsub()
			appGot := newRecorder()
			mustToken(t, "app subscribe", app.Subscribe(out, 1, appGot.pahoHandler))
			defer app.Unsubscribe(out)

			mustToken(t, "app publish", app.Publish(in, 1, false, "to-edge"))
			if ms := got.waitN(t, 1); ms[0].Topic != in || string(ms[0].Payload) != "to-edge" {
				t.Errorf("handler got %q %q, want %q to-edge", ms[0].Topic, ms[0].Payload, in)
			}
			if err := b.Publish(context.Background(), Message{Topic: out, Payload: []byte("from-edge"), QoS: 1}); err != nil {
				t.Fatalf("Publish over TLS: %v", err)
			}
			if ms := appGot.waitN(t, 1); ms[0].Topic != out || string(ms[0].Payload) != "from-edge" {
				t.Errorf("app got %q %q, want %q from-edge", ms[0].Topic, ms[0].Payload, out)
			}
		})
	}
}

// TestExternalTLSRefused: a handshake that must fail never gives a connection, and the
// logged reason is the TLS one (not, say, a wrong port).
func TestExternalTLSRefused(t *testing.T) {
	tb := startTLSMosquitto(t)
	other := newTestCA(t, t.TempDir(), "other")
	otherClientCert, otherClientKey := other.issue("edgecore-test", x509.ExtKeyUsageClientAuth, nil, nil)
	good := TLSConfig{CAFile: tb.ca.caFile, CertFile: tb.clientCert, KeyFile: tb.clientKey}

	for _, tc := range []struct {
		name string
		tls  TLSConfig
		// wantErr is a piece of the connect error edgecore logs, when edgecore refuses.
		wantErr string
		// wantBrokerLog is a piece of mosquitto's log, when the broker refuses: with TLS 1.3
		// the client's handshake ends before the broker checks the client certificate, so
		// edgecore sees either the broker's alert or a reset, depending on timing.
		wantBrokerLog string
	}{
		{name: "wrong CA", tls: TLSConfig{CAFile: other.caFile, CertFile: tb.clientCert, KeyFile: tb.clientKey}, wantErr: "certificate signed by unknown authority"},
		{name: "wrong server name", tls: TLSConfig{CAFile: tb.ca.caFile, CertFile: tb.clientCert, KeyFile: tb.clientKey, ServerName: "other.edge.test"}, wantErr: "not other.edge.test"},
		{name: "no client certificate", tls: TLSConfig{CAFile: tb.ca.caFile}, wantBrokerLog: "did not return a certificate"},
		{name: "client certificate from another CA", tls: TLSConfig{CAFile: tb.ca.caFile, CertFile: otherClientCert, KeyFile: otherClientKey}, wantBrokerLog: "certificate verify failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logStart := len(tb.logText())
			cfg := externalConfig(tb.tlsURL("ssl"))
			cfg.External.TLS = tc.tls
			logs := &connectErrors{}
			b := startBusLog(t, cfg, slog.New(logs))
			// Two failures logged: the first connection and the retry after the backoff.
			waitFor(t, "two failed connections", func() bool { return len(logs.errors()) >= 2 })
			if s := b.Stats(); s.Connects != 0 || s.ExternalConnected {
				t.Errorf("connected despite %s: %+v", tc.name, s)
			}
			err := b.Publish(context.Background(), Message{Topic: "tls/refused", Payload: []byte("x"), QoS: 1})
			if !errors.Is(err, ErrDisconnected) {
				t.Errorf("Publish: %v, want ErrDisconnected", err)
			}
			if errs := logs.errors(); !strings.Contains(errs[0], tc.wantErr) {
				t.Errorf("connect error %q, want one containing %q", errs[0], tc.wantErr)
			}
			if tc.wantBrokerLog != "" {
				waitFor(t, fmt.Sprintf("%q in the broker's log", tc.wantBrokerLog), func() bool {
					return strings.Contains(tb.logText()[logStart:], tc.wantBrokerLog)
				})
			}
		})
	}

	// The same broker takes edgecore with the right files: the refusals above were for
	// the reasons tested.
	cfg := externalConfig(tb.tlsURL("ssl"))
	cfg.External.TLS = good
	waitConnects(t, startBus(t, cfg), 1)
}

// connectErrors is a slog handler that keeps the err attribute of every failed
// connection attempt the bus logs.
type connectErrors struct {
	mu   sync.Mutex
	errs []string
}

func (h *connectErrors) Enabled(context.Context, slog.Level) bool { return true }

func (h *connectErrors) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "cannot connect to the external MQTT broker") {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			h.mu.Lock()
			h.errs = append(h.errs, a.Value.String())
			h.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

// WithAttrs and WithGroup drop what they are given: only the records' own err matters.
func (h *connectErrors) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *connectErrors) WithGroup(string) slog.Handler      { return h }

func (h *connectErrors) errors() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.errs...)
}
