package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/skerry-io/skerry/cloud/bootstrap"
	"github.com/skerry-io/skerry/cloud/ca"
	"github.com/skerry-io/skerry/cloud/config"
	"github.com/skerry-io/skerry/edge/certs"
	devfake "github.com/skerry-io/skerry/pkg/client/clientset/versioned/fake"
	"github.com/skerry-io/skerry/pkg/transport"
)

func testConfig() *config.CloudCore {
	cfg := config.Default()
	cfg.Hub.WebSocket.Address = "127.0.0.1:0"
	cfg.Hub.QUIC = config.Listener{Enable: true, Address: "127.0.0.1:0"}
	cfg.Bootstrap.Address = "127.0.0.1:0"
	cfg.Bootstrap.AdvertiseAddresses = []string{"127.0.0.1"}
	cfg.Admin.Address = "127.0.0.1:0"
	cfg.Admission.Address = "127.0.0.1:0"
	return cfg
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunJoinConnectAndStop is the "done when" in one process: a token made the way
// keadm makes it lets an edge join through the bootstrap service and connect to the hub over
// WebSocket and QUIC, /debug/nodes shows it, and cancelling the context stops everything.
func TestRunJoinConnectAndStop(t *testing.T) {
	if err := testConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := New(ctx, testConfig(), client, devfake.NewSimpleClientset(), log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	addrs := a.Addrs()
	admin := "http://" + addrs["admin"].String()

	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _ := get(t, admin+"/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _ := get(t, admin+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	// The device API is not served by the fake: cloudcore is ready all the same, and the
	// device metrics are there.
	if _, body := get(t, admin+"/metrics"); !strings.Contains(body, "# TYPE skerry_cloudcore_devices gauge") ||
		!strings.Contains(body, `skerry_cloudcore_authz_denied_total{class="foreign-device"} 0`) ||
		!strings.Contains(body, `skerry_cloudcore_upstream_messages_total{kind="devicestatus",outcome="handled"} 0`) ||
		!strings.Contains(body, "# TYPE skerry_cloudcore_mqtt_uploads_total counter") {
		t.Errorf("/metrics lacks the device metrics:\n%s", body)
	}

	caCert, err := ca.LoadCACert(ctx, client, "kubeedge")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := bootstrap.CreateToken(ctx, bootstrap.NewSecretStore(client, "kubeedge"), caCert, bootstrap.TokenOptions{NodeName: "edge-1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := certs.Bootstrap(ctx, addrs["bootstrap"].String(), tok.String(), "edge-1", t.TempDir())
	if err != nil {
		t.Fatalf("join: %v", err)
	}

	dial := func(d transport.Dialer) transport.Conn {
		t.Helper()
		c, err := d.Dial(ctx)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		return c
	}
	ws := dial(transport.WebSocketDialer{Config: transport.DialConfig{Addr: addrs["websocket"].String(), NodeName: "edge-1", TLS: creds.ClientTLSConfig("")}})
	waitNodes(t, admin, []string{"edge-1"})
	_ = ws.Close("test done")
	waitNodes(t, admin, []string{})

	q := dial(transport.QUICDialer{Config: transport.DialConfig{Addr: addrs["quic"].String(), NodeName: "edge-1", TLS: creds.ClientTLSConfig("")}})
	waitNodes(t, admin, []string{"edge-1"})
	defer q.Close("test done")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop within 5s")
	}
	if _, err := http.Get(admin + "/healthz"); err == nil {
		t.Fatal("admin still serving after stop")
	}
}

func waitNodes(t *testing.T, admin string, want []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		_, body := get(t, admin+"/debug/nodes")
		got = nil
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("/debug/nodes %q: %v", body, err)
		}
		if slices.Equal(got, want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("/debug/nodes %v, want %v", got, want)
}

func TestNewRestartKeepsCAAndFailsOnBusyPort(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	a, err := New(ctx, testConfig(), client, devfake.NewSimpleClientset(), nil)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := ca.LoadCACert(ctx, client, "kubeedge")
	cfg := testConfig()
	cfg.Admin.Address = a.Addrs()["admin"].String()
	if _, err := New(ctx, cfg, client, devfake.NewSimpleClientset(), nil); err == nil || !strings.Contains(err.Error(), "admin.address") {
		t.Fatalf("busy admin port: %v", err)
	}
	a.Close()
	b, err := New(ctx, testConfig(), client, devfake.NewSimpleClientset(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	again, _ := ca.LoadCACert(ctx, client, "kubeedge")
	if !again.Equal(first) {
		t.Fatal("restart replaced the CA")
	}
}
