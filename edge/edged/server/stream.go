package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

// maxPorts bounds the ports of one port-forward request.
const maxPorts = 128

// streamOptions are the kubelet's exec/attach query parameters.
type streamOptions struct {
	stdin, stdout, stderr, tty bool
	command                    []string
}

// parseStreamOptions reads both the kubelet's names (input, output, error: what the
// apiserver sends) and PodExecOptions' (stdin, stdout, stderr).
func parseStreamOptions(q url.Values, needCommand bool) (streamOptions, error) {
	var o streamOptions
	var err error
	for _, p := range []struct {
		dst   *bool
		names []string
	}{
		{&o.stdin, []string{"input", "stdin"}},
		{&o.stdout, []string{"output", "stdout"}},
		{&o.stderr, []string{"error", "stderr"}},
		{&o.tty, []string{"tty"}},
	} {
		for _, n := range p.names {
			var v bool
			if v, err = streamBool(q, n); err != nil {
				return o, err
			}
			*p.dst = *p.dst || v
		}
	}
	if o.tty {
		// As the kubelet: a terminal has no separate stderr.
		o.stderr = false
	}
	if !o.stdin && !o.stdout && !o.stderr {
		return o, fmt.Errorf("you must specify at least 1 of stdin, stdout, stderr")
	}
	if needCommand {
		o.command = q["command"]
		if len(o.command) == 0 || o.command[0] == "" {
			return o, fmt.Errorf("command: at least one argument is required")
		}
	}
	return o, nil
}

// streamBool parses "1"/"true" and "0"/"false" (the apiserver sends "1").
func streamBool(q url.Values, name string) (bool, error) {
	v, ok := q[name]
	if !ok || len(v) == 0 || v[0] == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v[0])
	if err != nil {
		return false, fmt.Errorf("%s: must be 1, 0, true or false, got %q", name, v[0])
	}
	return b, nil
}

// parsePorts reads port-forward ports ("port" or "ports", repeated or comma-separated).
func parsePorts(q url.Values) ([]int32, error) {
	var ports []int32
	for _, name := range []string{"port", "ports"} {
		for _, v := range q[name] {
			for _, p := range strings.Split(v, ",") {
				p = strings.TrimSpace(p)
				if p == "" {
					continue
				}
				n, err := strconv.ParseUint(p, 10, 16)
				if err != nil || n == 0 {
					return nil, fmt.Errorf("port: must be between 1 and 65535, got %q", p)
				}
				if len(ports) >= maxPorts {
					return nil, fmt.Errorf("port: at most %d ports", maxPorts)
				}
				ports = append(ports, int32(n))
			}
		}
	}
	return ports, nil
}

// streamPod finds the pod of a streaming request; uid, when the path has one, must match.
func (s *Server) streamPod(namespace, name, uid string) (*corev1.Pod, error) {
	pod := s.findPod(namespace, name)
	if pod == nil || (uid != "" && types.UID(uid) != pod.UID) {
		return nil, errorf(http.StatusNotFound, "pod %q does not exist", name)
	}
	return pod, nil
}

// serveStream answers /exec and /attach: it asks the runtime for a streaming URL and proxies
// the connection (SPDY or WebSocket upgrade) to it.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, verb, namespace, podName, uid, container string) {
	if err := validateNames(namespace, podName, container); err != nil {
		writeError(w, err)
		return
	}
	opts, err := parseStreamOptions(r.URL.Query(), verb == "exec")
	if err != nil {
		writeStatus(w, http.StatusBadRequest, err.Error())
		return
	}
	pod, err := s.streamPod(namespace, podName, uid)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	cs, err := s.listContainers(ctx, pod, container)
	if err != nil {
		writeError(w, err)
		return
	}
	var id string
	for _, c := range cs {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			id = c.Id
			break
		}
	}
	if id == "" {
		writeStatus(w, http.StatusNotFound, fmt.Sprintf("container not found (%q)", container))
		return
	}
	cctx, ccancel := s.callCtx(ctx)
	var raw string
	if verb == "exec" {
		resp, cerr := s.cfg.Runtime.Exec(cctx, &runtimeapi.ExecRequest{
			ContainerId: id, Cmd: opts.command,
			Stdin: opts.stdin, Stdout: opts.stdout, Stderr: opts.stderr, Tty: opts.tty,
		})
		raw, err = resp.GetUrl(), cerr
	} else {
		resp, cerr := s.cfg.Runtime.Attach(cctx, &runtimeapi.AttachRequest{
			ContainerId: id,
			Stdin:       opts.stdin, Stdout: opts.stdout, Stderr: opts.stderr, Tty: opts.tty,
		})
		raw, err = resp.GetUrl(), cerr
	}
	ccancel()
	if err != nil {
		writeError(w, criError(verb, err))
		return
	}
	s.proxy(ctx, w, r, raw)
}

// servePortForward answers /portForward: the runtime's port-forward URL for the pod's
// sandbox, proxied.
func (s *Server) servePortForward(w http.ResponseWriter, r *http.Request, namespace, podName, uid string) {
	if err := validateNames(namespace, podName); err != nil {
		writeError(w, err)
		return
	}
	ports, err := parsePorts(r.URL.Query())
	if err != nil {
		writeStatus(w, http.StatusBadRequest, err.Error())
		return
	}
	pod, err := s.streamPod(namespace, podName, uid)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	id, err := s.sandboxID(ctx, pod)
	if err != nil {
		writeError(w, err)
		return
	}
	cctx, ccancel := s.callCtx(ctx)
	resp, err := s.cfg.Runtime.PortForward(cctx, &runtimeapi.PortForwardRequest{PodSandboxId: id, Port: ports})
	ccancel()
	if err != nil {
		writeError(w, criError("port forward", err))
		return
	}
	s.proxy(ctx, w, r, resp.GetUrl())
}

// sandboxID returns the pod's newest ready sandbox.
func (s *Server) sandboxID(ctx context.Context, pod *corev1.Pod) (string, error) {
	sel := map[string]string{edged.LabelPodNamespace: pod.Namespace, edged.LabelPodName: pod.Name}
	if pod.UID != "" {
		sel[edged.LabelPodUID] = string(pod.UID)
	}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.cfg.Runtime.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: sel,
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	}})
	if err != nil {
		return "", criError("list sandboxes", err)
	}
	items := resp.GetItems()
	sort.SliceStable(items, func(i, j int) bool { return items[i].GetCreatedAt() > items[j].GetCreatedAt() })
	for _, sb := range items {
		if sb.GetId() != "" && sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			return sb.GetId(), nil
		}
	}
	return "", errorf(http.StatusNotFound, "pod %q has no running sandbox", pod.Name)
}

// newStreamTransport returns the transport to the runtime's streaming server: HTTP/1.1 (an
// upgrade needs it), never through an environment proxy, no connection reuse (each URL is a
// one-time token). containerd serves TLS with a self-signed certificate when configured to;
// the URL itself came over the trusted CRI socket, so the certificate is not verified.
func newStreamTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // see above
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableKeepAlives:     true,
	}
}

// proxy forwards r to the runtime's streaming URL. httputil.ReverseProxy switches protocols
// (SPDY/3.1 or WebSocket) on a 101 and copies both ways until either side closes or ctx ends.
func (s *Server) proxy(ctx context.Context, w http.ResponseWriter, r *http.Request, raw string) {
	target, err := url.Parse(raw)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		writeStatus(w, http.StatusInternalServerError, fmt.Sprintf("runtime returned an unusable streaming URL %q", raw))
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := *target
			if u.RawQuery == "" {
				// containerd keeps the options with the token; the query still matters
				// to servers that read ports from it (WebSocket port-forward).
				u.RawQuery = pr.In.URL.RawQuery
			}
			pr.Out.URL = &u
			pr.Out.Host = u.Host
		},
		Transport:     s.streamTransport,
		FlushInterval: -1,
		ErrorLog:      s.errLog,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if ctx.Err() != nil {
				return
			}
			s.log.Debug("stream proxy failed", "err", err)
			writeStatus(w, http.StatusBadGateway, fmt.Sprintf("runtime streaming server: %v", err))
		},
	}
	rp.ServeHTTP(w, r.WithContext(ctx))
}
