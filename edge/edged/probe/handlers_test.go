package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func hostPort(t *testing.T, raw string) (string, int) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(u.Port())
	return u.Hostname(), p
}

func localTarget(c *corev1.Container) target {
	if c == nil {
		c = &corev1.Container{Name: "c"}
	}
	return target{containerID: "id", c: c, host: "127.0.0.1"}
}

func TestExecProbe(t *testing.T) {
	big := strings.Repeat("x", 8<<10)
	for _, tc := range []struct {
		name    string
		exec    execFunc
		want    result
		wantOut string
		wantErr bool
	}{
		{name: "success", want: success, wantOut: "ok",
			exec: func(context.Context, string, []string, time.Duration) ([]byte, []byte, int32, error) {
				return []byte("ok"), nil, 0, nil
			}},
		{name: "failure", want: failure, wantOut: "outerr",
			exec: func(context.Context, string, []string, time.Duration) ([]byte, []byte, int32, error) {
				return []byte("out"), []byte("err"), 2, nil
			}},
		{name: "capped", want: failure, wantOut: (big + big)[:maxOutput],
			exec: func(context.Context, string, []string, time.Duration) ([]byte, []byte, int32, error) {
				return []byte(big), []byte(big), 1, nil
			}},
		{name: "runtime timeout", want: failure, wantOut: `command "sh -c sleep 9" timed out`,
			exec: func(ctx context.Context, _ string, _ []string, timeout time.Duration) ([]byte, []byte, int32, error) {
				select {
				case <-time.After(timeout):
					return nil, nil, 0, status.Error(codes.DeadlineExceeded, "timeout exceeded")
				case <-ctx.Done():
					return nil, nil, 0, ctx.Err()
				}
			}},
		{name: "runtime error", wantErr: true,
			exec: func(context.Context, string, []string, time.Duration) ([]byte, []byte, int32, error) {
				return nil, nil, 0, errors.New("container not found")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandlers(tc.exec)
			p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "sleep 9"}}}}
			r, out, err := h.probe(context.Background(), p, localTarget(nil), 50*time.Millisecond)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error: %v %q", r, out)
				}
				return
			}
			if err != nil || r != tc.want || out != tc.wantOut {
				t.Fatalf("got %v %q %v", r, out, err)
			}
		})
	}
}

func TestExecProbeExpandsEnv(t *testing.T) {
	var got []string
	h := newHandlers(execFunc(func(_ context.Context, _ string, cmd []string, _ time.Duration) ([]byte, []byte, int32, error) {
		got = cmd
		return nil, nil, 0, nil
	}))
	c := &corev1.Container{Name: "c", Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", ValueFrom: &corev1.EnvVarSource{}}}}
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"x", "$(A)-$(B)-$(C)-$$(A)"}}}}
	if _, _, err := h.probe(context.Background(), p, localTarget(c), time.Second); err != nil {
		t.Fatal(err)
	}
	if got[1] != "1--$(C)-$(A)" {
		t.Fatalf("command %q", got)
	}
}

func httpGetProbe(port intstr.IntOrString, path string, mod func(*corev1.HTTPGetAction)) *corev1.Probe {
	a := &corev1.HTTPGetAction{Port: port, Path: path}
	if mod != nil {
		mod(a)
	}
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: a}}
}

func TestHTTPProbe(t *testing.T) {
	reqs := make(chan *http.Request, 100)
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { reqs <- r; _, _ = w.Write([]byte("fine")) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "secret", 500) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(strings.Repeat("b", 50<<10))) })
	mux.HandleFunc("/slow", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("/to-ok", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/to-fail", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/fail", http.StatusFound) })
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Location", "http://elsewhere.invalid/fail")
		w.WriteHeader(http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()
	_, port := hostPort(t, srv.URL)
	_, tlsPort := hostPort(t, tlsSrv.URL)
	c := &corev1.Container{Name: "c", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: int32(port)}}}
	h := newHandlers(nil)

	for _, tc := range []struct {
		name    string
		p       *corev1.Probe
		want    result
		wantOut string
		wantErr bool
	}{
		{"success", httpGetProbe(intstr.FromInt32(int32(port)), "/ok", nil), success, "fine", false},
		{"named port", httpGetProbe(intstr.FromString("web"), "/ok", nil), success, "fine", false},
		{"numeric string port", httpGetProbe(intstr.FromString(strconv.Itoa(port)), "/ok", nil), success, "fine", false},
		{"unknown port name", httpGetProbe(intstr.FromString("nope"), "/ok", nil), 0, "", true},
		{"status 500", httpGetProbe(intstr.FromInt32(int32(port)), "/fail", nil), failure, "HTTP probe failed with statuscode: 500", false},
		{"404", httpGetProbe(intstr.FromInt32(int32(port)), "/missing", nil), failure, "HTTP probe failed with statuscode: 404", false},
		{"big body capped", httpGetProbe(intstr.FromInt32(int32(port)), "/big", nil), success, strings.Repeat("b", maxOutput), false},
		{"same-host redirect followed", httpGetProbe(intstr.FromInt32(int32(port)), "/to-fail", nil), failure, "HTTP probe failed with statuscode: 500", false},
		{"same-host redirect to ok", httpGetProbe(intstr.FromInt32(int32(port)), "/to-ok", nil), success, "fine", false},
		{"other-host redirect not followed", httpGetProbe(intstr.FromInt32(int32(port)), "/elsewhere", nil), success, "Probe terminated redirects, Response body: ", false},
		{"https without verification", httpGetProbe(intstr.FromInt32(int32(tlsPort)), "/ok", func(a *corev1.HTTPGetAction) { a.Scheme = corev1.URISchemeHTTPS }), success, "fine", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, out, err := h.probe(context.Background(), tc.p, localTarget(c), 5*time.Second)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error: %v %q", r, out)
				}
				return
			}
			if err != nil || r != tc.want || out != tc.wantOut {
				t.Fatalf("got %v %q %v", r, out, err)
			}
		})
	}

	t.Run("timeout", func(t *testing.T) {
		r, out, err := h.probe(context.Background(), httpGetProbe(intstr.FromInt32(int32(port)), "/slow", nil), localTarget(c), 100*time.Millisecond)
		if err != nil || r != failure || !strings.Contains(out, "Client.Timeout exceeded") {
			t.Fatalf("got %v %q %v", r, out, err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		r, out, err := h.probe(context.Background(), httpGetProbe(intstr.FromInt32(int32(closedPort(t))), "/", nil), localTarget(c), time.Second)
		if err != nil || r != failure || !strings.Contains(out, "connection refused") {
			t.Fatalf("got %v %q %v", r, out, err)
		}
	})
	t.Run("headers", func(t *testing.T) {
		for len(reqs) > 0 {
			<-reqs
		}
		p := httpGetProbe(intstr.FromInt32(int32(port)), "/ok?x=1", func(a *corev1.HTTPGetAction) {
			a.HTTPHeaders = []corev1.HTTPHeader{{Name: "x-custom", Value: "v1"}, {Name: "X-Custom", Value: "v2"}, {Name: "Host", Value: "app.example"}}
		})
		if r, out, err := h.probe(context.Background(), p, localTarget(c), time.Second); r != success {
			t.Fatalf("got %v %q %v", r, out, err)
		}
		req := <-reqs
		if req.Host != "app.example" || req.URL.RawQuery != "x=1" || req.UserAgent() != probeUserAgent ||
			req.Header.Get("Accept") != "*/*" || strings.Join(req.Header.Values("X-Custom"), ",") != "v1,v2" {
			t.Fatalf("request host %q query %q headers %v", req.Host, req.URL.RawQuery, req.Header)
		}
		p = httpGetProbe(intstr.FromInt32(int32(port)), "/ok", func(a *corev1.HTTPGetAction) {
			a.HTTPHeaders = []corev1.HTTPHeader{{Name: "User-Agent", Value: "mine"}, {Name: "Accept", Value: ""}}
		})
		if r, out, err := h.probe(context.Background(), p, localTarget(c), time.Second); r != success {
			t.Fatalf("got %v %q %v", r, out, err)
		}
		req = <-reqs
		if req.UserAgent() != "mine" || req.Header.Values("Accept") != nil {
			t.Fatalf("headers %v", req.Header)
		}
	})
	t.Run("explicit host", func(t *testing.T) {
		tg := localTarget(c)
		tg.host = "" // the pod's IP is not needed when the handler names a host
		p := httpGetProbe(intstr.FromInt32(int32(port)), "/ok", func(a *corev1.HTTPGetAction) { a.Host = "127.0.0.1" })
		if r, out, err := h.probe(context.Background(), p, tg, time.Second); r != success {
			t.Fatalf("got %v %q %v", r, out, err)
		}
	})
}

func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return p
}

func tcpProbeSpec(port intstr.IntOrString) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: port}}}
}

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	port := l.Addr().(*net.TCPAddr).Port
	c := &corev1.Container{Name: "c", Ports: []corev1.ContainerPort{{Name: "svc", ContainerPort: int32(port)}}}
	h := newHandlers(nil)
	if r, out, err := h.probe(context.Background(), tcpProbeSpec(intstr.FromInt32(int32(port))), localTarget(c), time.Second); r != success || err != nil {
		t.Fatalf("got %v %q %v", r, out, err)
	}
	if r, out, err := h.probe(context.Background(), tcpProbeSpec(intstr.FromString("svc")), localTarget(c), time.Second); r != success || err != nil {
		t.Fatalf("named: got %v %q %v", r, out, err)
	}
	if r, out, err := h.probe(context.Background(), tcpProbeSpec(intstr.FromInt32(int32(closedPort(t)))), localTarget(c), time.Second); r != failure || err != nil || !strings.Contains(out, "refused") {
		t.Fatalf("closed: got %v %q %v", r, out, err)
	}
	if _, _, err := h.probe(context.Background(), tcpProbeSpec(intstr.FromInt32(0)), localTarget(c), time.Second); err == nil {
		t.Fatal("port 0 accepted")
	}
	tg := localTarget(c)
	tg.host, tg.hostErr = "", errors.New("no ip")
	if _, _, err := h.probe(context.Background(), tcpProbeSpec(intstr.FromInt32(int32(port))), tg, time.Second); err == nil {
		t.Fatal("probe without a pod IP did not error")
	}
}

// TestTCPProbeTimeout connects to a listener whose accept queue is full: Linux drops the
// SYN, so the connect hangs until the probe's timeout.
func TestTCPProbeTimeout(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Close(fd) }()
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	port := sa.(*syscall.SockaddrInet4).Port
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// Fill the queue (backlog 0 holds one connection).
	for range 2 {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		defer func() { _ = conn.Close() }()
	}
	h := newHandlers(nil)
	r, out, err := h.probe(context.Background(), tcpProbeSpec(intstr.FromInt32(int32(port))), localTarget(nil), 200*time.Millisecond)
	if err != nil || r != failure || !strings.Contains(out, "timeout") {
		t.Fatalf("got %v %q %v", r, out, err)
	}
}

func grpcProbeSpec(port int, service string) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(port), Service: &service}}}
}

func TestGRPCProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	port := l.Addr().(*net.TCPAddr).Port

	bare, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bareSrv := grpc.NewServer() // no health service
	go func() { _ = bareSrv.Serve(bare) }()
	defer bareSrv.Stop()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = silent.Close() }()
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			defer func() { _ = conn.Close() }()
		}
	}()

	h := newHandlers(nil)
	for _, tc := range []struct {
		name    string
		p       *corev1.Probe
		timeout time.Duration
		want    result
		wantOut string
	}{
		{"serving overall", grpcProbeSpec(port, ""), time.Second, success, "service healthy"},
		{"serving service", grpcProbeSpec(port, "up"), time.Second, success, "service healthy"},
		{"not serving", grpcProbeSpec(port, "down"), time.Second, failure, `service unhealthy (responded with "NOT_SERVING")`},
		{"unknown service", grpcProbeSpec(port, "nope"), time.Second, failure, "error: health rpc probe failed: "},
		{"unimplemented", grpcProbeSpec(bare.Addr().(*net.TCPAddr).Port, ""), time.Second, failure, "error: this server does not implement the grpc health protocol"},
		{"timeout", grpcProbeSpec(silent.Addr().(*net.TCPAddr).Port, ""), 200 * time.Millisecond, failure, "timeout: health rpc did not complete within 200ms"},
		{"refused", grpcProbeSpec(closedPort(t), ""), time.Second, failure, "error: health rpc probe failed: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, out, err := h.probe(context.Background(), tc.p, localTarget(nil), tc.timeout)
			if err != nil || r != tc.want || !strings.HasPrefix(out, tc.wantOut) {
				t.Fatalf("got %v %q %v", r, out, err)
			}
		})
	}
	if _, _, err := h.probe(context.Background(), grpcProbeSpec(70000, ""), localTarget(nil), time.Second); err == nil {
		t.Fatal("port 70000 accepted")
	}
}

func TestNoHandler(t *testing.T) {
	if _, _, err := newHandlers(nil).probe(context.Background(), &corev1.Probe{}, localTarget(nil), time.Second); err == nil {
		t.Fatal("no error")
	}
}
