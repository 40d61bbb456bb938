package app

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skerry-io/skerry/cloud/admission"
	"github.com/skerry-io/skerry/pkg/pki"
)

// listenAdmission opens the webhook's HTTPS listener and prepares its registration.
func (a *App) listenAdmission(authority *pki.CA, serving tls.Certificate, advertise []net.IP) error {
	cfg := a.cfg.Admission
	policy, err := admission.NewPolicy(admission.Config{
		Enabled:                  cfg.EdgePodsDefault,
		DefaultTolerationSeconds: cfg.DefaultTolerationSeconds,
	}, edgeNodes{a}, a.log.With("component", "admission"))
	if err != nil {
		return fmt.Errorf("admission: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return fmt.Errorf("admission.address: %w", err)
	}
	a.admLn = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{serving}, MinVersion: tls.VersionTLS12})
	mux := http.NewServeMux()
	mux.Handle(admission.Path, admission.NewHandler(policy, a.log.With("component", "admission")))
	a.admSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)}

	url := cfg.URL
	if url == "" {
		host := "127.0.0.1"
		if len(advertise) > 0 {
			host = advertise[0].String()
		}
		url = fmt.Sprintf("https://%s%s", net.JoinHostPort(host, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)), admission.Path)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: authority.Cert.Raw})
	a.admHook = admission.WebhookConfiguration(admission.WebhookName, caPEM, url)
	return nil
}

// registerWebhook creates or updates the webhook's registration, retrying until it succeeds:
// without it pods get no autonomy tolerations, but nothing else depends on it.
func (a *App) registerWebhook(ctx context.Context) {
	delay := time.Second
	for {
		err := admission.Ensure(ctx, a.client, a.admHook)
		if err == nil {
			a.log.Info("autonomy webhook registered", "url", *a.admHook.Webhooks[0].ClientConfig.URL)
			return
		}
		a.log.Warn("registering the autonomy webhook failed, will retry", "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}

// edgeNodes is the webhook's view of edge Nodes: the controller's cache, which holds only
// Nodes with the edge label.
type edgeNodes struct{ a *App }

func (e edgeNodes) Get(name string) (*corev1.Node, error) {
	if n, ok := e.a.ctrl.Node(name); ok {
		return n, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "nodes"}, name)
}
