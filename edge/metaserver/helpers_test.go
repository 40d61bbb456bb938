package metaserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/skerry-io/skerry/pkg/wire"
)

// testEnv is a running metaserver on a loopback port with a fake store.
type testEnv struct {
	t     *testing.T
	store *fakeStore
	fwd   *fakeForwarder
	srv   *Server
	url   string
}

func newEnv(t *testing.T, mod func(*Config)) *testEnv {
	t.Helper()
	e := &testEnv{t: t, store: newFakeStore(), fwd: &fakeForwarder{}}
	cfg := Config{
		Address:   "127.0.0.1:0",
		Store:     e.store,
		Forwarder: e.fwd,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:       func() time.Time { return time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC) },
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	e.srv, e.url = srv, "http://"+ln.Addr().String()
	return e
}

// testWriter sends logs to t.Log, and drops them once the test is over.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // logging after the test ended panics in t.Log
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (e *testEnv) do(method, path string, hdr map[string]string, body string) (int, []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b
}

func (e *testEnv) getJSON(path string, want int) map[string]any {
	e.t.Helper()
	code, b := e.do("GET", path, nil, "")
	if code != want {
		e.t.Fatalf("GET %s: %d %s, want %d", path, code, b, want)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		e.t.Fatalf("GET %s: %v: %s", path, err, b)
	}
	return m
}

// watchStream is an open watch request read line by line.
type watchStream struct {
	t      *testing.T
	cancel context.CancelFunc
	body   io.ReadCloser
	lines  chan watchLine
}

type watchLine struct {
	Type   string         `json:"type"`
	Object map[string]any `json:"object"`
}

func (e *testEnv) watch(path string, hdr map[string]string) *watchStream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		cancel()
		e.t.Fatalf("watch %s: %d %s", path, resp.StatusCode, b)
	}
	ws := &watchStream{t: e.t, cancel: cancel, body: resp.Body, lines: make(chan watchLine, 100)}
	go func() {
		defer close(ws.lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var l watchLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l = watchLine{Type: "UNPARSABLE:" + sc.Text()}
			}
			ws.lines <- l
		}
	}()
	e.t.Cleanup(ws.close)
	return ws
}

func (ws *watchStream) close() {
	ws.cancel()
	_ = ws.body.Close()
}

// next returns the next event, failing the test after a deadline.
func (ws *watchStream) next() watchLine {
	ws.t.Helper()
	select {
	case l, ok := <-ws.lines:
		if !ok {
			ws.t.Fatal("watch stream ended")
		}
		return l
	case <-time.After(10 * time.Second):
		ws.t.Fatal("no watch event within 10s")
	}
	return watchLine{}
}

// ended waits for the stream to end.
func (ws *watchStream) ended() error {
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ws.lines:
			if !ok {
				return nil
			}
		case <-deadline:
			return errors.New("watch stream did not end within 10s")
		}
	}
}

func (l watchLine) name() string {
	md, _ := l.Object["metadata"].(map[string]any)
	s, _ := md["name"].(string)
	return s
}

func (l watchLine) rv() string {
	md, _ := l.Object["metadata"].(map[string]any)
	s, _ := md["resourceVersion"].(string)
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Object builders.

func podKey(ns, name string) wire.Key { return wire.Key{Namespace: ns, Type: wire.TypePod, Name: name} }

func pod(ns, name string, labels map[string]string, phase string) map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": "uid-" + name, "labels": labels,
			"resourceVersion": "9000", "creationTimestamp": "2026-11-21T23:00:00Z"},
		"spec": map[string]any{"nodeName": "edge-1", "containers": []any{map[string]any{"name": "c", "image": "busybox"}}},
		"status": map[string]any{"phase": phase, "podIP": "10.88.0.5",
			"containerStatuses": []any{map[string]any{"name": "c", "ready": phase == "Running", "restartCount": 2,
				"image": "busybox", "imageID": "", "state": map[string]any{"running": map[string]any{}}}}},
	}
}

func configMap(ns, name string, labels map[string]string) map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": labels, "creationTimestamp": "2026-11-21T22:00:00Z"},
		"data":     map[string]any{"a": "1"},
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
