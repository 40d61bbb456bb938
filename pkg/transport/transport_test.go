package transport

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/wire"
)

// pkiFixture holds the certificates every test uses.
type pkiFixture struct {
	ca         *pki.CA
	serverTLS  *tls.Config
	edge1      tls.Certificate // system:node:edge-1, O system:nodes
	wrongCN    tls.Certificate // alice, signed by the CA
	noOrg      tls.Certificate // system:node:edge-1 without O system:nodes
	otherCA    tls.Certificate // system:node:edge-1 from an unrelated CA
	caPoolOnly *tls.Config     // client config with no certificate
}

func newPKI(t testing.TB) *pkiFixture {
	t.Helper()
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "skerry-test-ca"})
	must(t, err)
	other, err := pki.NewCA(pki.CAConfig{CommonName: "rogue-ca"})
	must(t, err)
	issue := func(ca *pki.CA, cn string, orgs ...string) tls.Certificate {
		kp, err := ca.IssueClient(cn, orgs...)
		must(t, err)
		c, err := Certificate(kp)
		must(t, err)
		return c
	}
	srvKP, err := ca.IssueServer("cloudcore", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	must(t, err)
	srvCert, err := Certificate(srvKP)
	must(t, err)
	serverTLS, err := ServerTLSConfig(srvCert, ca.Pool())
	must(t, err)
	noCert, err := ClientTLSConfig(tls.Certificate{}, ca.Pool(), "")
	must(t, err)
	noCert.Certificates = nil
	return &pkiFixture{
		ca:         ca,
		serverTLS:  serverTLS,
		edge1:      issue(ca, "system:node:edge-1", NodesOrganization),
		wrongCN:    issue(ca, "alice", NodesOrganization),
		noOrg:      issue(ca, "system:node:edge-1"),
		otherCA:    issue(other, "system:node:edge-1", NodesOrganization),
		caPoolOnly: noCert,
	}
}

func (f *pkiFixture) client(t testing.TB, cert tls.Certificate) *tls.Config {
	t.Helper()
	c, err := ClientTLSConfig(cert, f.ca.Pool(), "")
	must(t, err)
	return c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// transportCase adapts the shared suite to one transport.
type transportCase struct {
	name       string
	listen     func(ServerConfig) (Server, error)
	dialer     func(DialConfig) Dialer
	codeNormal int
	codeBig    int
	codeDown   int
}

func transports() []transportCase {
	return []transportCase{
		{
			name:       ProtocolWebSocket,
			listen:     func(c ServerConfig) (Server, error) { return ListenWebSocket(c) },
			dialer:     func(c DialConfig) Dialer { return WebSocketDialer{Config: c} },
			codeNormal: CodeWSNormal, codeBig: CodeWSTooBig, codeDown: CodeWSGoingAway,
		},
		{
			name:       ProtocolQUIC,
			listen:     func(c ServerConfig) (Server, error) { return ListenQUIC(c) },
			dialer:     func(c DialConfig) Dialer { return QUICDialer{Config: c} },
			codeNormal: int(CodeQUICNormal), codeBig: int(CodeQUICTooLarge), codeDown: int(CodeQUICShutdown),
		},
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// startServer runs a server until the test ends; stop cancels it early and waits for Serve.
func startServer(t testing.TB, tc transportCase, f *pkiFixture, opts Options, h Handler) (addr string, stop func()) {
	t.Helper()
	opts.Logger = testLogger(t)
	srv, err := tc.listen(ServerConfig{Addr: "127.0.0.1:0", TLS: f.serverTLS, Handler: h, Options: opts})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return srv.Addr().String(), stop
}

func dial(t testing.TB, tc transportCase, addr string, tlsConf *tls.Config, node string) (Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return tc.dialer(DialConfig{Addr: addr, NodeName: node, TLS: tlsConf, Options: Options{Logger: testLogger(t)}}).Dial(ctx)
}

func mustDial(t testing.TB, tc transportCase, addr string, f *pkiFixture) Conn {
	t.Helper()
	c, err := dial(t, tc, addr, f.client(t, f.edge1), "edge-1")
	must(t, err)
	t.Cleanup(func() { _ = c.Close("test over") })
	return c
}

// checkGoroutines fails the test if goroutines started during it are still running at the
// end. Register it first: cleanups run last-in first-out.
func checkGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d running, %d before\n%s", runtime.NumGoroutine(), base, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func testMsg(i int, content string) *wire.Message {
	return wire.NewMessage(wire.Route{
		Source:    "edged",
		Group:     wire.GroupResource,
		Operation: wire.OpUpdate,
		Resource:  "default/podstatus/pod-" + strconv.Itoa(i),
	}, json.RawMessage(strconv.Quote(content)))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo answers every message with a reply carrying the same content.
func echo(ctx context.Context, c Conn) {
	for {
		m, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, m.Reply(m.Content)); err != nil {
			return
		}
	}
}

func TestRoundTrip(t *testing.T) {
	f := newPKI(t)
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			type seen struct {
				node, project, cn, proto string
			}
			seenc := make(chan seen, 1)
			addr, _ := startServer(t, tc, f, Options{}, func(ctx context.Context, c Conn) {
				seenc <- seen{c.NodeName(), c.ProjectID(), c.PeerCertificate().Subject.CommonName, c.Protocol()}
				// Cloud speaks first: downstream direction.
				if err := c.Write(ctx, testMsg(0, "welcome")); err != nil {
					return
				}
				echo(ctx, c)
			})
			c := mustDial(t, tc, addr, f)
			ctx := ctxT(t)
			got := <-seenc
			want := seen{"edge-1", DefaultProjectID, "system:node:edge-1", tc.name}
			if got != want {
				t.Fatalf("server saw %+v, want %+v", got, want)
			}
			if c.PeerCertificate().Subject.CommonName != "cloudcore" || c.Protocol() != tc.name {
				t.Fatalf("client sees peer %q protocol %q", c.PeerCertificate().Subject.CommonName, c.Protocol())
			}
			m, err := c.Read(ctx)
			must(t, err)
			if string(m.Content) != `"welcome"` {
				t.Fatalf("first message content %s", m.Content)
			}
			for i := range 20 {
				sent := testMsg(i, strings.Repeat("x", i*100))
				must(t, c.Write(ctx, sent))
				r, err := c.Read(ctx)
				must(t, err)
				if r.Header.ParentID != sent.Header.ID || string(r.Content) != string(sent.Content) || r.Route.Resource != sent.Route.Resource {
					t.Fatalf("reply %d does not match: %+v", i, r)
				}
			}
		})
	}
}

func TestConcurrentWrites(t *testing.T) {
	f := newPKI(t)
	const writers, each = 8, 50
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			received := make(chan *wire.Message, writers*each)
			addr, _ := startServer(t, tc, f, Options{}, func(ctx context.Context, c Conn) {
				for {
					m, err := c.Read(ctx)
					if err != nil {
						return
					}
					received <- m
				}
			})
			c := mustDial(t, tc, addr, f)
			ctx := ctxT(t)
			want := make(map[string]string)
			var mu sync.Mutex
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						m := testMsg(w*each+i, fmt.Sprintf("writer %d message %d %s", w, i, strings.Repeat("y", 1000)))
						mu.Lock()
						want[m.Header.ID] = string(m.Content)
						mu.Unlock()
						if err := c.Write(ctx, m); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			for range writers * each {
				select {
				case m := <-received:
					if want[m.Header.ID] != string(m.Content) {
						t.Fatalf("message %s arrived damaged or unknown", m.Header.ID)
					}
					delete(want, m.Header.ID)
				case <-ctx.Done():
					t.Fatalf("only %d of %d messages arrived", writers*each-len(want), writers*each)
				}
			}
		})
	}
}

func TestRefused(t *testing.T) {
	f := newPKI(t)
	cases := []struct {
		name    string
		tls     func() *tls.Config
		node    string
		refused bool   // refused after TLS, with the server's reason (ErrRefused)
		reason  string // expected in the error text
	}{
		{"wrong CN", func() *tls.Config { return f.client(t, f.wrongCN) }, "edge-1", true, `"alice" is not "system:node:"`},
		{"missing system:nodes", func() *tls.Config { return f.client(t, f.noOrg) }, "edge-1", true, "lacks organization"},
		{"node name not the certificate's", func() *tls.Config { return f.client(t, f.edge1) }, "edge-2", true, `certificate is for node "edge-1", request names node "edge-2"`},
		{"certificate from another CA", func() *tls.Config { return f.client(t, f.otherCA) }, "edge-1", false, "certificate"},
		{"no client certificate", func() *tls.Config { return f.caPoolOnly }, "edge-1", false, "certificate"},
	}
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			calls := 0
			var mu sync.Mutex
			addr, _ := startServer(t, tc, f, Options{}, func(ctx context.Context, c Conn) {
				mu.Lock()
				calls++
				mu.Unlock()
				echo(ctx, c)
			})
			for _, rc := range cases {
				t.Run(rc.name, func(t *testing.T) {
					c, err := dial(t, tc, addr, rc.tls(), rc.node)
					if err == nil {
						_ = c.Close("unexpected")
						t.Fatal("connection accepted")
					}
					if rc.refused != errors.Is(err, ErrRefused) {
						t.Errorf("errors.Is(err, ErrRefused) = %v, want %v", !rc.refused, rc.refused)
					}
					if !strings.Contains(err.Error(), rc.reason) {
						t.Errorf("error %q does not contain %q", err, rc.reason)
					}
					t.Logf("refused: %v", err)
				})
			}
			mu.Lock()
			n := calls
			mu.Unlock()
			if n != 0 {
				t.Fatalf("handler called %d times for refused connections", n)
			}
			// The server is unharmed.
			c := mustDial(t, tc, addr, f)
			must(t, c.Write(ctxT(t), testMsg(1, "still here")))
			if _, err := c.Read(ctxT(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOversizedFrame(t *testing.T) {
	f := newPKI(t)
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			readErr := make(chan error, 4)
			addr, _ := startServer(t, tc, f, Options{Limits: wire.Limits{MaxMessageSize: 4096}}, func(ctx context.Context, c Conn) {
				for {
					m, err := c.Read(ctx)
					if err != nil {
						readErr <- err
						return
					}
					if err := c.Write(ctx, m.Ack()); err != nil {
						return
					}
				}
			})
			c := mustDial(t, tc, addr, f)
			ctx := ctxT(t)
			must(t, c.Write(ctx, testMsg(1, strings.Repeat("z", 10000))))
			if err := <-readErr; !errors.Is(err, wire.ErrTooLarge) {
				t.Fatalf("server read error %v, want ErrTooLarge", err)
			}
			_, err := c.Read(ctx)
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != tc.codeBig {
				t.Fatalf("client read error %v, want close code %d", err, tc.codeBig)
			}
			// A good connection still works.
			good := mustDial(t, tc, addr, f)
			must(t, good.Write(ctx, testMsg(2, "small")))
			if m, err := good.Read(ctx); err != nil || string(m.Content) != wire.AckContent {
				t.Fatalf("good connection after oversized frame: %v %v", m, err)
			}
		})
	}
}

func TestCloseReason(t *testing.T) {
	f := newPKI(t)
	for _, tc := range transports() {
		t.Run(tc.name+"/client closes", func(t *testing.T) {
			checkGoroutines(t)
			readErr := make(chan error, 1)
			addr, _ := startServer(t, tc, f, Options{}, func(ctx context.Context, c Conn) {
				_, err := c.Read(ctx)
				readErr <- err
			})
			c := mustDial(t, tc, addr, f)
			must(t, c.Close("node is being drained"))
			err := <-readErr
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != tc.codeNormal || ce.Reason != "node is being drained" || !ce.Remote {
				t.Fatalf("server read error %v", err)
			}
			if err := c.Write(ctxT(t), testMsg(1, "x")); !errors.Is(err, ErrClosed) {
				t.Fatalf("write after close: %v", err)
			}
		})
		t.Run(tc.name+"/server closes", func(t *testing.T) {
			checkGoroutines(t)
			addr, _ := startServer(t, tc, f, Options{}, func(ctx context.Context, c Conn) {
				if _, err := c.Read(ctx); err == nil {
					_ = c.Close("certificate revoked")
				}
			})
			c := mustDial(t, tc, addr, f)
			must(t, c.Write(ctxT(t), testMsg(1, "hello")))
			_, err := c.Read(ctxT(t))
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != tc.codeNormal || ce.Reason != "certificate revoked" {
				t.Fatalf("client read error %v", err)
			}
		})
	}
}

func TestShutdownClosesEverything(t *testing.T) {
	f := newPKI(t)
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			var started sync.WaitGroup
			started.Add(3)
			addr, stop := startServer(t, tc, f, Options{}, func(ctx context.Context, c Conn) {
				started.Done()
				echo(ctx, c)
			})
			var conns []Conn
			for range 3 {
				conns = append(conns, mustDial(t, tc, addr, f))
			}
			started.Wait()
			stop()
			for _, c := range conns {
				_, err := c.Read(ctxT(t))
				var ce *CloseError
				if !errors.As(err, &ce) || ce.Code != tc.codeDown {
					t.Errorf("client read after shutdown: %v, want close code %d", err, tc.codeDown)
				}
			}
			// Short: over UDP a closed port is silence, not a refusal.
			d := tc.dialer(DialConfig{Addr: addr, NodeName: "edge-1", TLS: f.client(t, f.edge1), Options: Options{HandshakeTimeout: time.Second}})
			if _, err := d.Dial(ctxT(t)); err == nil {
				t.Fatal("dial succeeded after shutdown")
			}
		})
	}
}

func TestReadCancel(t *testing.T) {
	f := newPKI(t)
	for _, tc := range transports() {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			addr, _ := startServer(t, tc, f, Options{}, echo)
			c := mustDial(t, tc, addr, f)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if _, err := c.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("read with expiring context: %v", err)
			}
		})
	}
}

func TestNodeNameFromCertificate(t *testing.T) {
	f := newPKI(t)
	if n, err := NodeNameFromCertificate(f.edge1.Leaf); err != nil || n != "edge-1" {
		t.Fatalf("edge-1: %q %v", n, err)
	}
	for _, c := range []tls.Certificate{f.wrongCN, f.noOrg} {
		if n, err := NodeNameFromCertificate(c.Leaf); err == nil {
			t.Errorf("%s accepted as %q", c.Leaf.Subject.CommonName, n)
		}
	}
	if _, err := NodeNameFromCertificate(nil); err == nil {
		t.Error("nil certificate accepted")
	}
}
