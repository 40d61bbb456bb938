package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/skerry-io/skerry/edge/edged"
)

// HookRunner runs lifecycle handlers with the kubelet's semantics. It implements
// edged.Hooks.
type HookRunner struct {
	log   *slog.Logger
	clock clock.WithTicker
	h     *handlers
}

var _ edged.Hooks = (*HookRunner)(nil)

// NewHookRunner returns a HookRunner; it starts no goroutines.
func NewHookRunner(cfg Config) *HookRunner {
	cfg = cfg.withDefaults()
	return &HookRunner{log: cfg.Logger, clock: cfg.Clock, h: newHandlers(cfg.Exec)}
}

// Run runs h and returns when it finished, failed or ctx ended. The error says which hook
// failed and carries the handler's output; a tcpSocket handler (deprecated, never run by
// the kubelet) or an empty one fails with an error wrapping edged.ErrUnsupported.
func (r *HookRunner) Run(ctx context.Context, pod *corev1.Pod, c *corev1.Container, containerID string, h *corev1.LifecycleHandler, facts edged.Facts) error {
	podRef := fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
	switch {
	case h.Exec != nil:
		// No timeout, as the kubelet: ctx bounds it (the grace period for preStop).
		stdout, stderr, code, err := r.h.exec.ExecSync(ctx, containerID, h.Exec.Command, 0)
		if err == nil && code != 0 {
			err = fmt.Errorf("command '%s' exited with %d: %s", strings.Join(h.Exec.Command, " "), code, stderr)
		}
		if err != nil {
			return fmt.Errorf("exec lifecycle hook (%v) for container %q in pod %q failed - error: %w, message: %q",
				h.Exec.Command, c.Name, podRef, err, capOutput(stdout, stderr))
		}
		return nil
	case h.HTTPGet != nil:
		if err := r.runHTTP(ctx, pod, c, containerID, h.HTTPGet, facts); err != nil {
			return fmt.Errorf("HTTP lifecycle hook (%s) for container %q in pod %q failed - error: %w", h.HTTPGet.Path, c.Name, podRef, err)
		}
		return nil
	case h.Sleep != nil:
		if h.Sleep.Seconds <= 0 {
			return nil
		}
		t := r.clock.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C():
			return nil
		case <-ctx.Done():
			return fmt.Errorf("sleep lifecycle hook (%d) for container %q in pod %q failed - error: container terminated before sleep hook finished: %w",
				h.Sleep.Seconds, c.Name, podRef, ctx.Err())
		}
	case h.TCPSocket != nil:
		return fmt.Errorf("invalid handler: tcpSocket lifecycle handler for container %q: %w", c.Name, edged.ErrUnsupported)
	}
	return fmt.Errorf("invalid handler: lifecycle handler for container %q has no action: %w", c.Name, edged.ErrUnsupported)
}

// runHTTP sends the hook's GET. As the kubelet, any response counts as success whatever
// its status code: only a request that gets no response fails. An https hook answered in
// plain HTTP is retried over http without the Authorization header, as the kubelet does.
// Unlike the kubelet (which sets no timeout) the request ends with ctx.
func (r *HookRunner) runHTTP(ctx context.Context, pod *corev1.Pod, c *corev1.Container, containerID string, a *corev1.HTTPGetAction, facts edged.Facts) error {
	host, hostErr := podHost(pod, facts)
	req, err := httpRequest(ctx, a, target{containerID: containerID, c: c, host: host, hostErr: hostErr}, lifecycleUserAgent)
	if err != nil {
		return err
	}
	client := r.h.client(0)
	resp, err := client.Do(req)
	discardBody(resp)
	if err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		r.log.Info("HTTPS lifecycle hook got an HTTP response, retrying with HTTP", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "host", req.URL.Host)
		req = req.Clone(ctx)
		req.URL.Scheme = "http"
		req.Header.Del("Authorization")
		resp, httpErr := client.Do(req)
		discardBody(resp)
		if httpErr == nil {
			err = nil
		} else {
			err = errors.Join(err, httpErr)
		}
	}
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	return nil
}

// discardBody drains a little of the body so the connection closes cleanly.
func discardBody(resp *http.Response) {
	if resp == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxOutput))
	_ = resp.Body.Close()
}
