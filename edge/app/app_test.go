package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skerry-io/skerry/edge/certs"
	"github.com/skerry-io/skerry/edge/config"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

const node = "edge-1"

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig(t *testing.T, server string) *config.EdgeCore {
	c := config.Default()
	c.NodeName = node
	c.DataDir = t.TempDir()
	c.Hub.Server = server
	c.MetaServer.Address = "127.0.0.1:0"
	c.Edged.Enable = false // no container runtime in unit tests
	// The device modules run, on a free port and a socket of the test's own.
	c.EventBus.Internal.Address = "127.0.0.1:0"
	c.DeviceTwin.DMI.Socket = filepath.Join(c.DataDir, "dmi.sock")
	c.Hub.Backoff = config.Backoff{Base: config.Duration{Duration: 10 * time.Millisecond}, Max: config.Duration{Duration: 50 * time.Millisecond}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// writeCreds stores a node certificate signed by ca as certs.Bootstrap would.
func writeCreds(t *testing.T, dataDir string, ca *pki.CA) {
	t.Helper()
	kp, err := ca.IssueClient("system:node:"+node, "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	dir := certs.Dir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteCertFile(filepath.Join(dir, certs.CAFile), ca.Cert); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteKeyPair(filepath.Join(dir, certs.CertFile), filepath.Join(dir, certs.KeyFile), kp); err != nil {
		t.Fatal(err)
	}
}

func TestNoCertificateAndNoTokenNamesHubToken(t *testing.T) {
	cfg := testConfig(t, "127.0.0.1:1")
	err := Run(context.Background(), cfg, quiet())
	if !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "hub.token") {
		t.Fatalf("Run = %v, want ErrNoToken naming hub.token", err)
	}
}

func TestExpiredCertificateGivesRecoverySteps(t *testing.T) {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "test-ca", Validity: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.Hub.Token = strings.Repeat("ab", 32) + ".secret" // must not be used: a certificate exists
	writeCreds(t, cfg.DataDir, ca)
	time.Sleep(100 * time.Millisecond)
	err = Run(context.Background(), cfg, quiet())
	if !errors.Is(err, certs.ErrCertExpired) || !strings.Contains(err.Error(), "keadm gettoken") {
		t.Fatalf("Run = %v, want ErrCertExpired with the recovery steps", err)
	}
}

// TestBootstrapFailureNamesBootstrapServer: while the cloud cannot be reached the join is
// retried, each failure is logged naming hub.bootstrapServer and never the token, and a stop
// during the retries is a normal stop.
func TestBootstrapFailureNamesBootstrapServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.Hub.BootstrapServer = addr
	cfg.Hub.Token = strings.Repeat("ab", 32) + ".secret"
	logs := newLogRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, logs.logger()) }()
	first := logs.wait(t, joinRetryMsg, 3)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if !strings.Contains(first, "hub.bootstrapServer") || strings.Contains(first, "secret") {
		t.Fatalf("join failure logged as %q, want it to name hub.bootstrapServer and not the token", first)
	}
}

// TestRunSyncsWithCloud runs edgecore against a small in-process cloud hub: the edge reports
// its inventory, stores what the cloud sends and acknowledges it, and after a restart reports
// the stored object in its inventory.
func TestRunSyncsWithCloud(t *testing.T) {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "test-ca"})
	if err != nil {
		t.Fatal(err)
	}
	serverKP, err := ca.IssueServer("cloudcore", nil, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := transport.Certificate(serverKP)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := transport.ServerTLSConfig(serverCert, ca.Pool())
	if err != nil {
		t.Fatal(err)
	}

	inventories := make(chan wire.Inventory, 4)
	acks := make(chan *wire.Message, 4)
	insert := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: wire.OpInsert,
		Resource: "default/configmap/cfg"}, json.RawMessage(`{"metadata":{"name":"cfg","uid":"u1","resourceVersion":"7"}}`))
	handler := func(ctx context.Context, c transport.Conn) {
		sentInsert := false
		for {
			m, err := c.Read(ctx)
			if err != nil {
				return
			}
			switch {
			case wire.IsInventory(m):
				var inv wire.Inventory
				if err := json.Unmarshal(m.Content, &inv); err != nil {
					t.Errorf("inventory content: %v", err)
					return
				}
				inventories <- inv
				if err := c.Write(ctx, m.Ack()); err != nil {
					return
				}
				if len(inv.Items) == 0 && !sentInsert {
					sentInsert = true
					if err := c.Write(ctx, insert); err != nil {
						return
					}
				}
			case m.Route.Operation == wire.OpResponse:
				acks <- m
			}
		}
	}
	srv, err := transport.ListenWebSocket(transport.ServerConfig{Addr: "127.0.0.1:0", TLS: serverTLS, Handler: handler})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopServer := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	defer func() { stopServer(); <-served }()

	cfg := testConfig(t, srv.Addr().String())
	writeCreds(t, cfg.DataDir, ca)

	runEdge := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg, quiet()) }()
		return func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run after cancel = %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		}
	}

	stop := runEdge()
	select {
	case inv := <-inventories:
		if len(inv.Items) != 0 {
			t.Fatalf("first inventory = %+v, want empty", inv)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no inventory from the edge")
	}
	select {
	case ack := <-acks:
		if ack.Header.ParentID != insert.Header.ID {
			t.Fatalf("ack for %q, want %q", ack.Header.ParentID, insert.Header.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("insert not acknowledged")
	}
	stop()

	// The store is closed after Run: it can be opened again and holds the object.
	db, err := store.Open(context.Background(), cfg.DataDir, store.Options{Logger: quiet()})
	if err != nil {
		t.Fatalf("store after Run: %v", err)
	}
	_ = db.Close()

	stop = runEdge()
	defer stop()
	select {
	case inv := <-inventories:
		want := wire.InventoryItem{Key: "default/configmap/cfg", UID: "u1", ResourceVersion: "7"}
		if len(inv.Items) != 1 || inv.Items[0] != want {
			t.Fatalf("inventory after restart = %+v, want [%+v]", inv, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no inventory after restart")
	}
}
