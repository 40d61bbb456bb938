package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// wsUpstream is a fake runtime streaming server speaking the Kubernetes WebSocket channel
// protocol: what arrives on stdin (channel 0) goes back on stdout (channel 1).
func wsUpstream(t *testing.T, paths chan<- string) *httptest.Server {
	up := websocket.Upgrader{Subprotocols: []string{"v5.channel.k8s.io", "v4.channel.k8s.io"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if len(msg) > 0 && msg[0] == 0 {
				msg[0] = 1
				if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// spdyUpstream answers an SPDY/3.1 upgrade and echoes the raw connection, which is all a
// proxy can see of SPDY.
func spdyUpstream(t *testing.T, paths chan<- string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path + "?" + r.URL.RawQuery
		if !strings.EqualFold(r.Header.Get("Upgrade"), "SPDY/3.1") {
			http.Error(w, "upgrade required", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer func() { _ = conn.Close() }()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func streamFixture(t *testing.T, upstream func(*testing.T, chan<- string) *httptest.Server) (*fakeRuntime, *Server, *httptest.Server, chan string) {
	t.Helper()
	paths := make(chan string, 10)
	up := upstream(t, paths)
	f := newFakeRuntime()
	f.streamURL = up.URL
	f.addContainer(t, "ns", "web", "uid-1", "app", "c0", 0, runtimeapi.ContainerState_CONTAINER_EXITED, "")
	f.addContainer(t, "ns", "web", "uid-1", "app", "c1", 1, runtimeapi.ContainerState_CONTAINER_RUNNING, "")
	f.addContainer(t, "ns", "web", "uid-1", "stopped", "c2", 0, runtimeapi.ContainerState_CONTAINER_EXITED, "")
	f.sandboxes = []*runtimeapi.PodSandbox{
		{Id: "sb-old", State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY, CreatedAt: 5, Labels: map[string]string{"io.kubernetes.pod.namespace": "ns", "io.kubernetes.pod.name": "web", "io.kubernetes.pod.uid": "uid-1"}},
		{Id: "sb-web", State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: 1, Labels: map[string]string{"io.kubernetes.pod.namespace": "ns", "io.kubernetes.pod.name": "web", "io.kubernetes.pod.uid": "uid-1"}},
	}
	s, ts := newTestServer(t, f, nil, testPod("ns", "web", "uid-1", "app", "stopped"))
	return f, s, ts, paths
}

func TestExecWebSocket(t *testing.T) {
	f, _, ts, paths := streamFixture(t, wsUpstream)
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/exec/ns/web/app?command=sh&command=-c&command=echo+hi&input=1&output=1&tty=0"
	d := websocket.Dialer{Subprotocols: []string{"v5.channel.k8s.io"}, HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer func() { _ = c.Close() }()
	if c.Subprotocol() != "v5.channel.k8s.io" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	if p := <-paths; p != "/exec/token1" {
		t.Fatalf("upstream path %q", p)
	}
	if err := c.WriteMessage(websocket.BinaryMessage, []byte("\x00hello")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil || string(msg) != "\x01hello" {
		t.Fatalf("got %q %v", msg, err)
	}
	f.mu.Lock()
	req := f.lastExec
	f.mu.Unlock()
	if req.ContainerId != "c1" || strings.Join(req.Cmd, " ") != "sh -c echo hi" || !req.Stdin || !req.Stdout || req.Stderr || req.Tty {
		t.Fatalf("exec request %+v", req)
	}
}

// upgrade sends a raw SPDY upgrade request and returns the connection after the 101.
func upgrade(t *testing.T, ts *httptest.Server, method, path string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n", method, path)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

func TestAttachSPDY(t *testing.T) {
	f, _, ts, paths := streamFixture(t, spdyUpstream)
	conn, br, resp := upgrade(t, ts, http.MethodPost, "/attach/ns/web/uid-1/app?stdin=true&stdout=true&stderr=true&tty=true")
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Stream-Protocol-Version") != "v4.channel.k8s.io" {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
	}
	if p := <-paths; !strings.HasPrefix(p, "/attach/token2?") {
		t.Fatalf("upstream path %q", p)
	}
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("got %q %v", buf, err)
	}
	f.mu.Lock()
	req := f.lastAttach
	f.mu.Unlock()
	// A terminal has no separate stderr.
	if req.ContainerId != "c1" || !req.Stdin || !req.Stdout || req.Stderr || !req.Tty {
		t.Fatalf("attach request %+v", req)
	}
}

func TestPortForward(t *testing.T) {
	f, _, ts, paths := streamFixture(t, spdyUpstream)
	_, _, resp := upgrade(t, ts, http.MethodGet, "/portForward/ns/web?port=80,8080&port=9090")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("response %d", resp.StatusCode)
	}
	if p := <-paths; p != "/portforward/token3?port=80,8080&port=9090" {
		t.Fatalf("upstream %q", p)
	}
	f.mu.Lock()
	req := f.lastPF
	f.mu.Unlock()
	if req.PodSandboxId != "sb-web" || fmt.Sprint(req.Port) != "[80 8080 9090]" {
		t.Fatalf("port forward request %+v", req)
	}
}

func TestStreamErrors(t *testing.T) {
	_, _, ts, _ := streamFixture(t, spdyUpstream)
	for _, tc := range []struct {
		method, path string
		code         int
		msg          string
	}{
		{"POST", "/exec/ns/web/app?input=1", 400, "command"},
		{"POST", "/exec/ns/web/app?command=ls", 400, "at least 1 of stdin"},
		{"POST", "/exec/ns/web/app?command=ls&output=yes", 400, "output"},
		{"POST", "/exec/ns/nope/app?command=ls&output=1", 404, `pod "nope" does not exist`},
		{"POST", "/exec/ns/web/wrong-uid/app?command=ls&output=1", 404, `pod "web" does not exist`},
		{"POST", "/exec/ns/web/stopped?command=ls&output=1", 404, `container not found ("stopped")`},
		{"POST", "/exec/ns/web/Bad_Name?command=ls&output=1", 400, "invalid container name"},
		{"POST", "/attach/ns/web", 404, "could not find"},
		{"PUT", "/exec/ns/web/app?command=ls&output=1", 405, "not allowed"},
		{"POST", "/portForward/ns/web?port=0", 400, "port"},
		{"POST", "/portForward/ns/web?port=70000", 400, "port"},
		{"POST", "/portForward/ns/nope", 404, "does not exist"},
	} {
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var st metav1.Status
		_ = json.Unmarshal(b, &st)
		if resp.StatusCode != tc.code || !strings.Contains(st.Message, tc.msg) {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, b)
		}
	}
}

func TestStreamUpstreamDown(t *testing.T) {
	f, _, ts, _ := streamFixture(t, spdyUpstream)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.streamURL = "http://" + ln.Addr().String()
	f.mu.Unlock()
	_ = ln.Close()
	_, _, resp := upgrade(t, ts, http.MethodPost, "/exec/ns/web/app?command=ls&output=1")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("got %d", resp.StatusCode)
	}
}

// TestRunShutdownEndsStreams: Run returns promptly although an exec session is open.
func TestRunShutdownEndsStreams(t *testing.T) {
	paths := make(chan string, 10)
	up := spdyUpstream(t, paths)
	f := newFakeRuntime()
	f.streamURL = up.URL
	f.addContainer(t, "ns", "web", "", "app", "c1", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Address: ln.Addr().String(), Runtime: f, ShutdownTimeout: 3 * time.Second,
		Pods: func() []*corev1.Pod { return []*corev1.Pod{testPod("ns", "web", "", "app")} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	fmt.Fprintf(conn, "POST /exec/ns/web/app?command=sh&input=1 HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("stream still open after shutdown")
	}
}
