package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func newTestApp(t *testing.T, configFile string, env []string, logs io.Writer) *httptest.Server {
	t.Helper()
	a := &app{
		configFile: configFile,
		environ:    func() []string { return env },
		hostname:   func() (string, error) { return "demo-host", nil },
		log:        slog.New(slog.NewJSONHandler(logs, nil)),
	}
	srv := httptest.NewServer(a.routes())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestIndexShowsPodEnvAndConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(cfg, []byte("greeting: hello from a configmap\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"ZED=last", "POD_NAME=web-0", "POD_NAMESPACE=demo", "POD_IP=10.88.0.7", "ALPHA=first"}
	srv := newTestApp(t, cfg, env, io.Discard)

	code, body := get(t, srv.URL+"/")
	if code != http.StatusOK {
		t.Fatalf("status %d, want 200", code)
	}
	for _, want := range []string{
		"hostname:      demo-host",
		"pod name:      web-0",
		"pod namespace: demo",
		"pod IP:        10.88.0.7",
		"greeting: hello from a configmap",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	// All env vars, sorted.
	alpha, zed := strings.Index(body, "  ALPHA=first\n"), strings.Index(body, "  ZED=last\n")
	if alpha < 0 || zed < 0 || alpha > zed {
		t.Errorf("env vars missing or unsorted (ALPHA at %d, ZED at %d):\n%s", alpha, zed, body)
	}
}

func TestIndexConfigNotMounted(t *testing.T) {
	srv := newTestApp(t, filepath.Join(t.TempDir(), "absent"), nil, io.Discard)
	_, body := get(t, srv.URL+"/")
	if !strings.Contains(body, "not mounted") {
		t.Errorf("page should say the config is not mounted:\n%s", body)
	}
	if !strings.Contains(body, "pod name:      (unset)") {
		t.Errorf("page should mark POD_NAME unset:\n%s", body)
	}
}

func TestIndexConfigSizeLimit(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config")
	big := bytes.Repeat([]byte("a"), maxConfigBytes)
	big = append(big, []byte("TAIL-THAT-MUST-NOT-SHOW")...)
	if err := os.WriteFile(cfg, big, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := newTestApp(t, cfg, nil, io.Discard)
	_, body := get(t, srv.URL+"/")
	if strings.Contains(body, "TAIL") {
		t.Error("content past the size limit was shown")
	}
	if !strings.Contains(body, "[truncated at 65536 bytes]") {
		t.Error("page does not say the config was truncated")
	}
	if n := strings.Count(body, "a"); n < maxConfigBytes {
		t.Errorf("page shows %d bytes of config, want the first %d", n, maxConfigBytes)
	}
}

func TestHealthAndLogging(t *testing.T) {
	var logs bytes.Buffer
	srv := newTestApp(t, "/nonexistent", nil, &logs)
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, srv.URL+path); code != http.StatusOK || body != "ok\n" {
			t.Errorf("GET %s = %d %q, want 200 ok", path, code, body)
		}
	}
	if code, _ := get(t, srv.URL+"/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", code)
	}

	// One JSON line per request, with the fields an operator greps for.
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d log lines, want 3:\n%s", len(lines), logs.String())
	}
	var rec struct {
		Msg    string `json:"msg"`
		Method string `json:"method"`
		Path   string `json:"path"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal([]byte(lines[2]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Msg != "request" || rec.Method != "GET" || rec.Path != "/nope" || rec.Status != 404 {
		t.Errorf("log line = %+v", rec)
	}
}

func TestGRPCHealth(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serveGRPCHealth(ln, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer srv.GracefulStop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v %v", resp, err)
	}
}
