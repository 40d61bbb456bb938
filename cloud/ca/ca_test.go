package ca

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skerry-io/skerry/pkg/pki"
)

const ns = "kubeedge"

func TestEnsureNamespace(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	for range 2 {
		if err := EnsureNamespace(ctx, client, ns); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureCACreatesThenReloads(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	if _, err := LoadCACert(ctx, client, ns); !errors.Is(err, ErrNoCA) || err.Error() != "no CA in kubeedge/skerry-ca: start cloudcore first" {
		t.Fatalf("LoadCACert before start: %v", err)
	}
	first, created, err := EnsureCA(ctx, client, ns)
	if err != nil || !created {
		t.Fatalf("first EnsureCA: created %v, %v", created, err)
	}
	sec, err := client.CoreV1().Secrets(ns).Get(ctx, CASecretName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != corev1.SecretTypeTLS || len(sec.Data[corev1.TLSCertKey]) == 0 || len(sec.Data[corev1.TLSPrivateKeyKey]) == 0 {
		t.Fatalf("CA secret: type %q keys %v", sec.Type, len(sec.Data))
	}
	again, created, err := EnsureCA(ctx, client, ns)
	if err != nil || created {
		t.Fatalf("second EnsureCA: created %v, %v", created, err)
	}
	if !again.Cert.Equal(first.Cert) {
		t.Fatal("second start made a new CA")
	}
	cert, err := LoadCACert(ctx, client, ns)
	if err != nil || !cert.Equal(first.Cert) {
		t.Fatalf("LoadCACert: %v", err)
	}
}

func TestEnsureCAConcurrentFirstStartsAgree(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	const n = 8
	var wg sync.WaitGroup
	certs := make([][]byte, n)
	creators := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ca, created, err := EnsureCA(ctx, client, ns)
			errs[i], creators[i] = err, created
			if err == nil {
				certs[i] = ca.Cert.Raw
			}
		})
	}
	wg.Wait()
	stored, err := LoadCACert(ctx, client, ns)
	if err != nil {
		t.Fatal(err)
	}
	nCreated := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("EnsureCA %d: %v", i, errs[i])
		}
		if string(certs[i]) != string(stored.Raw) {
			t.Fatalf("EnsureCA %d returned a CA that is not the stored one", i)
		}
		if creators[i] {
			nCreated++
		}
	}
	if nCreated != 1 {
		t.Fatalf("%d callers report creating the CA, want 1", nCreated)
	}
}

func TestEnsureServingReusesAndReissuesOnSANChange(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	ca, _, err := EnsureCA(ctx, client, ns)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	req := ServingRequest([]net.IP{net.ParseIP("192.0.2.7")}, []string{"cloud.example.com"})
	kp, reason, err := EnsureServing(ctx, client, ns, ca, req, now)
	if err != nil || reason == "" {
		t.Fatalf("first EnsureServing: reason %q, %v", reason, err)
	}
	if err := ca.Verify(kp.Cert, pki.UsageServer, now); err != nil {
		t.Fatal(err)
	}
	wantIPs := map[string]bool{"127.0.0.1": true, "192.0.2.7": true}
	if len(kp.Cert.IPAddresses) != 2 || !wantIPs[kp.Cert.IPAddresses[0].String()] || !wantIPs[kp.Cert.IPAddresses[1].String()] {
		t.Fatalf("IP SANs %v", kp.Cert.IPAddresses)
	}
	if len(kp.Cert.DNSNames) != 2 || kp.Cert.DNSNames[0] != "localhost" || kp.Cert.DNSNames[1] != "cloud.example.com" {
		t.Fatalf("DNS SANs %v", kp.Cert.DNSNames)
	}

	same, reason, err := EnsureServing(ctx, client, ns, ca, ServingRequest([]net.IP{net.ParseIP("192.0.2.7")}, []string{"cloud.example.com"}), now)
	if err != nil || reason != "" || !same.Cert.Equal(kp.Cert) {
		t.Fatalf("unchanged config reissued: reason %q, %v", reason, err)
	}

	moved, reason, err := EnsureServing(ctx, client, ns, ca, ServingRequest([]net.IP{net.ParseIP("192.0.2.8")}, nil), now)
	if err != nil || reason == "" || moved.Cert.Equal(kp.Cert) {
		t.Fatalf("SAN change not reissued: reason %q, %v", reason, err)
	}
	stored, _, err := EnsureServing(ctx, client, ns, ca, ServingRequest([]net.IP{net.ParseIP("192.0.2.8")}, nil), now)
	if err != nil || !stored.Cert.Equal(moved.Cert) {
		t.Fatalf("reissued cert not stored: %v", err)
	}

	// Near the end of its life it is renewed.
	late := moved.Cert.NotAfter.Add(-time.Hour)
	_, reason, err = EnsureServing(ctx, client, ns, ca, ServingRequest([]net.IP{net.ParseIP("192.0.2.8")}, nil), late)
	if err != nil || reason == "" {
		t.Fatalf("expiring cert kept: reason %q, %v", reason, err)
	}

	// A serving certificate from another CA (the CA Secret was replaced by hand) is reissued.
	other, _, err := EnsureCA(ctx, fake.NewClientset(), ns)
	if err != nil {
		t.Fatal(err)
	}
	re, reason, err := EnsureServing(ctx, client, ns, other, ServingRequest([]net.IP{net.ParseIP("192.0.2.8")}, nil), now)
	if err != nil || reason == "" || other.Verify(re.Cert, pki.UsageServer, now) != nil {
		t.Fatalf("foreign serving cert kept: reason %q, %v", reason, err)
	}
}

func TestCorruptCASecretIsAnError(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: CASecretName, Namespace: ns},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: []byte("junk")},
	})
	if _, _, err := EnsureCA(ctx, client, ns); err == nil {
		t.Fatal("corrupt CA secret accepted")
	}
}
