package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
)

// maxOutput caps what a probe keeps of a command's output or a response body, the
// kubelet's limit: enough to explain a failure, small enough for an event.
const maxOutput = 10 << 10

// userAgent is what HTTP and gRPC handlers send unless the pod sets its own User-Agent;
// applications check for the kubelet's "kube-probe/" prefix, so it is kept.
const (
	probeUserAgent     = "kube-probe/1.36"
	lifecycleUserAgent = "kube-lifecycle/1.36"
)

// execGrace is how much longer than the probe's timeout an exec may take before we stop
// waiting: the runtime enforces the timeout itself and needs a moment to report it.
const execGrace = 2 * time.Second

// result is one probe attempt's outcome. An attempt that errors (the probe could not be
// run at all) has no result: the kubelet throws it away.
type result int

const (
	success result = iota + 1
	failure
)

func (r result) String() string {
	if r == success {
		return "success"
	}
	return "failure"
}

// target is what a handler needs about the container it probes.
type target struct {
	containerID string
	c           *corev1.Container
	host        string // the pod IP; "" when the pod has none yet
	hostErr     error  // why host is ""
}

// handlers run probe and hook handlers; shared by Manager and HookRunner.
type handlers struct {
	exec      Execer
	transport *http.Transport
}

func newHandlers(exec Execer) *handlers {
	return &handlers{
		exec: exec,
		// As the kubelet's prober: no proxy, no keep-alives (each probe is a fresh
		// connection, so a hung keep-alive cannot make probes pass or fail), no
		// compression, and no certificate verification (pods serve self-signed certs).
		transport: &http.Transport{
			Proxy:               nil,
			DialContext:         probeDialer().DialContext,
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet
			DisableKeepAlives:   true,
			DisableCompression:  true,
			TLSHandshakeTimeout: 10 * time.Second,
		},
	}
}

// probe runs one attempt of p's handler.
func (h *handlers) probe(ctx context.Context, p *corev1.Probe, t target, timeout time.Duration) (result, string, error) {
	switch {
	case p.Exec != nil:
		return h.execProbe(ctx, t, probeCommand(p.Exec.Command, t.c.Env), timeout)
	case p.HTTPGet != nil:
		return h.httpProbe(ctx, p.HTTPGet, t, timeout)
	case p.TCPSocket != nil:
		return tcpProbe(ctx, p.TCPSocket, t, timeout)
	case p.GRPC != nil:
		return grpcProbe(ctx, p.GRPC, t, timeout)
	}
	return 0, "", errors.New("probe has no handler")
}

func (h *handlers) execProbe(ctx context.Context, t target, cmd []string, timeout time.Duration) (result, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+execGrace)
	defer cancel()
	stdout, stderr, code, err := h.exec.ExecSync(ctx, t.containerID, cmd, timeout)
	if err != nil {
		if isTimeout(err) {
			return failure, fmt.Sprintf("command %q timed out", strings.Join(cmd, " ")), nil
		}
		return 0, "", fmt.Errorf("exec %q: %w", strings.Join(cmd, " "), err)
	}
	out := capOutput(stdout, stderr)
	if code != 0 {
		return failure, out, nil
	}
	return success, out, nil
}

func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded
}

// capOutput joins stdout and stderr as the kubelet does and keeps the first maxOutput bytes.
func capOutput(stdout, stderr []byte) string {
	out := make([]byte, 0, min(len(stdout)+len(stderr), maxOutput))
	out = append(out, stdout[:min(len(stdout), maxOutput)]...)
	out = append(out, stderr[:min(len(stderr), maxOutput-len(out))]...)
	return string(out)
}

// httpRequest builds the GET an httpGet handler sends, as the kubelet builds it.
func httpRequest(ctx context.Context, a *corev1.HTTPGetAction, t target, userAgent string) (*http.Request, error) {
	scheme := strings.ToLower(string(a.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := a.Host
	if host == "" {
		if t.host == "" {
			return nil, t.hostErr
		}
		host = t.host
	}
	port, err := resolvePort(a.Port, t.c)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(a.Path)
	if err != nil {
		// A path that does not parse is passed along as is, as the kubelet does.
		u = &url.URL{Path: a.Path}
	}
	u.Scheme = scheme
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	headers := make(http.Header)
	for _, hd := range a.HTTPHeaders {
		headers.Add(hd.Name, hd.Value)
	}
	if _, ok := headers["User-Agent"]; !ok {
		headers.Set("User-Agent", userAgent)
	}
	if _, ok := headers["Accept"]; !ok {
		headers.Set("Accept", "*/*")
	} else if headers.Get("Accept") == "" {
		headers.Del("Accept")
	}
	req.Header = headers
	req.Host = headers.Get("Host")
	return req, nil
}

// sameHostRedirects follows redirects only to the same host name (any port or scheme), at
// most 10; a redirect elsewhere ends the chain with the redirect response itself, which
// counts as success, as the kubelet does.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

func (h *handlers) client(timeout time.Duration) *http.Client {
	return &http.Client{Transport: h.transport, Timeout: timeout, CheckRedirect: sameHostRedirects}
}

func (h *handlers) httpProbe(ctx context.Context, a *corev1.HTTPGetAction, t target, timeout time.Duration) (result, string, error) {
	req, err := httpRequest(ctx, a, t, probeUserAgent)
	if err != nil {
		return 0, "", err
	}
	res, err := h.client(timeout).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, "", fmt.Errorf("http probe: %w", ctx.Err())
		}
		// Timeouts and refused connections are failures, not errors.
		return failure, err.Error(), nil
	}
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxOutput))
	if err != nil {
		return 0, "", fmt.Errorf("read http probe body: %w", err)
	}
	if res.StatusCode >= http.StatusOK && res.StatusCode < http.StatusBadRequest {
		if res.StatusCode >= http.StatusMultipleChoices {
			return success, "Probe terminated redirects, Response body: " + string(body), nil
		}
		return success, string(body), nil
	}
	// The body stays out of the message, as in the kubelet (it may hold secrets).
	return failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", res.StatusCode), nil
}

func tcpProbe(ctx context.Context, a *corev1.TCPSocketAction, t target, timeout time.Duration) (result, string, error) {
	host := a.Host
	if host == "" {
		if t.host == "" {
			return 0, "", t.hostErr
		}
		host = t.host
	}
	port, err := resolvePort(a.Port, t.c)
	if err != nil {
		return 0, "", err
	}
	d := probeDialer()
	d.Timeout = timeout
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		if ctx.Err() != nil {
			return 0, "", fmt.Errorf("tcp probe: %w", ctx.Err())
		}
		return failure, err.Error(), nil
	}
	_ = conn.Close()
	return success, "", nil
}

func grpcProbe(ctx context.Context, a *corev1.GRPCAction, t target, timeout time.Duration) (result, string, error) {
	if t.host == "" {
		return 0, "", t.hostErr
	}
	if a.Port <= 0 || a.Port >= 65536 {
		return 0, "", fmt.Errorf("invalid port number: %d", a.Port)
	}
	service := ""
	if a.Service != nil {
		service = *a.Service
	}
	addr := net.JoinHostPort(t.host, strconv.Itoa(int(a.Port)))
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithUserAgent(probeUserAgent),
		grpc.WithTransportCredentials(insecure.NewCredentials()), // the kubelet supports no TLS here either
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return probeDialer().DialContext(ctx, "tcp", addr)
		}),
	)
	if err != nil {
		return 0, "", fmt.Errorf("grpc client for %q: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		if ctx.Err() != nil {
			return 0, "", fmt.Errorf("grpc probe: %w", ctx.Err())
		}
		switch st, _ := status.FromError(err); st.Code() {
		case codes.Unimplemented:
			return failure, "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): " + st.Message(), nil
		case codes.DeadlineExceeded:
			return failure, fmt.Sprintf("timeout: health rpc did not complete within %v", timeout), nil
		}
		return failure, fmt.Sprintf("error: health rpc probe failed: %v", err), nil
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return failure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String()), nil
	}
	return success, "service healthy", nil
}
