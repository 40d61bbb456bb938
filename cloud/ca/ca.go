// Package ca keeps cloudcore's certificate authority and its serving certificate in Secrets, so
// that every cloudcore replica and restart uses the same CA and keadm can read it to print join
// tokens.
//
// Both are kubernetes.io/tls Secrets (tls.crt, tls.key in PEM) in cloudcore's namespace:
// [CASecretName] holds the CA, [ServingSecretName] the certificate the hub and the bootstrap
// service present. The CA is created once and never replaced: creation uses Create, and a
// cloudcore that loses the race (AlreadyExists) loads the winner's CA, so concurrent first
// starts agree on one CA. The serving certificate is reissued when its names no longer match
// the configuration, when it no longer chains to the CA, or when less than a third of its
// lifetime is left.
package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skerry-io/skerry/pkg/pki"
)

// Secret names and labels.
const (
	CASecretName      = "skerry-ca"
	ServingSecretName = "skerry-cloudcore-serving"
	// ServingCommonName is the subject of the serving certificate.
	ServingCommonName = "skerry-cloudcore"
	// CACommonName is the subject of the CA.
	CACommonName = "skerry-ca"

	managedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "skerry-cloudcore"
)

// ErrNoCA is returned by [LoadCACert] when cloudcore has not created the CA yet.
var ErrNoCA = errors.New("no CA")

// EnsureNamespace creates namespace ns unless it exists.
func EnsureNamespace(ctx context.Context, client kubernetes.Interface, ns string) error {
	_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get namespace %s: %w", ns, err)
	}
	_, err = client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// EnsureCA loads the CA from ns/skerry-ca, creating it first if the Secret does not exist.
// created says whether this call created it.
func EnsureCA(ctx context.Context, client kubernetes.Interface, ns string) (ca *pki.CA, created bool, err error) {
	secrets := client.CoreV1().Secrets(ns)
	sec, err := secrets.Get(ctx, CASecretName, metav1.GetOptions{})
	switch {
	case err == nil:
		ca, err := caFromSecret(sec)
		return ca, false, err
	case !apierrors.IsNotFound(err):
		return nil, false, fmt.Errorf("get secret %s/%s: %w", ns, CASecretName, err)
	}
	ca, err = pki.NewCA(pki.CAConfig{CommonName: CACommonName})
	if err != nil {
		return nil, false, err
	}
	sec, err = tlsSecret(ns, CASecretName, &ca.KeyPair)
	if err != nil {
		return nil, false, err
	}
	if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, false, fmt.Errorf("create secret %s/%s: %w", ns, CASecretName, err)
		}
		// Another cloudcore created it first: use theirs.
		sec, err := secrets.Get(ctx, CASecretName, metav1.GetOptions{})
		if err != nil {
			return nil, false, fmt.Errorf("get secret %s/%s: %w", ns, CASecretName, err)
		}
		ca, err := caFromSecret(sec)
		return ca, false, err
	}
	return ca, true, nil
}

// LoadCACert reads the CA certificate (not the key) from ns/skerry-ca. It returns an error
// wrapping ErrNoCA if the Secret does not exist.
func LoadCACert(ctx context.Context, client kubernetes.Interface, ns string) (*x509.Certificate, error) {
	sec, err := client.CoreV1().Secrets(ns).Get(ctx, CASecretName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w in %s/%s: start cloudcore first", ErrNoCA, ns, CASecretName)
	}
	if err != nil {
		return nil, fmt.Errorf("get secret %s/%s: %w", ns, CASecretName, err)
	}
	cert, err := pki.ParseCertPEM(sec.Data[corev1.TLSCertKey])
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s %s: %w", ns, CASecretName, corev1.TLSCertKey, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("secret %s/%s: %q is not a CA certificate", ns, CASecretName, cert.Subject.CommonName)
	}
	return cert, nil
}

// ServingRequest is the serving certificate for the given names; localhost and 127.0.0.1 are
// always included.
func ServingRequest(ips []net.IP, dnsNames []string) pki.Request {
	req := pki.Request{CommonName: ServingCommonName, Usage: pki.UsageServer}
	seenIP := map[string]bool{}
	for _, ip := range append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...) {
		if k := ip.String(); !seenIP[k] {
			seenIP[k] = true
			req.IPAddresses = append(req.IPAddresses, ip)
		}
	}
	seenDNS := map[string]bool{}
	for _, n := range append([]string{"localhost"}, dnsNames...) {
		if !seenDNS[n] {
			seenDNS[n] = true
			req.DNSNames = append(req.DNSNames, n)
		}
	}
	return req
}

// EnsureServing loads the serving certificate from ns/skerry-cloudcore-serving and reissues it
// (signed by ca) when it is missing, does not match req, does not chain to ca or has less than
// a third of its lifetime left. reason is empty when the stored certificate was kept.
func EnsureServing(ctx context.Context, client kubernetes.Interface, ns string, ca *pki.CA, req pki.Request, now time.Time) (kp *pki.KeyPair, reason string, err error) {
	secrets := client.CoreV1().Secrets(ns)
	for attempt := 0; ; attempt++ {
		sec, err := secrets.Get(ctx, ServingSecretName, metav1.GetOptions{})
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, "", fmt.Errorf("get secret %s/%s: %w", ns, ServingSecretName, err)
		}
		reason = "no serving certificate yet"
		if exists {
			kp, reason = usable(sec, ca, req, now)
			if reason == "" {
				return kp, "", nil
			}
		}
		kp, err = ca.Issue(req)
		if err != nil {
			return nil, "", err
		}
		fresh, err := tlsSecret(ns, ServingSecretName, kp)
		if err != nil {
			return nil, "", err
		}
		if exists {
			fresh.ResourceVersion = sec.ResourceVersion
			_, err = secrets.Update(ctx, fresh, metav1.UpdateOptions{})
		} else {
			_, err = secrets.Create(ctx, fresh, metav1.CreateOptions{})
		}
		if err == nil {
			return kp, reason, nil
		}
		// Another cloudcore wrote it meanwhile: look again (its certificate may suit us).
		if (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) && attempt < 3 {
			continue
		}
		return nil, "", fmt.Errorf("store secret %s/%s: %w", ns, ServingSecretName, err)
	}
}

// usable returns the stored serving key pair, or why it must be reissued.
func usable(sec *corev1.Secret, ca *pki.CA, req pki.Request, now time.Time) (*pki.KeyPair, string) {
	kp, err := keyPairFromSecret(sec)
	if err != nil {
		return nil, err.Error()
	}
	if err := req.Matches(kp.Cert); err != nil {
		return nil, err.Error()
	}
	if err := ca.Verify(kp.Cert, pki.UsageServer, now); err != nil {
		return nil, err.Error()
	}
	life := kp.Cert.NotAfter.Sub(kp.Cert.NotBefore)
	if kp.Cert.NotAfter.Sub(now) < life/3 {
		return nil, fmt.Sprintf("expires %s", kp.Cert.NotAfter.Format(time.RFC3339))
	}
	return kp, ""
}

func tlsSecret(ns, name string, kp *pki.KeyPair) (*corev1.Secret, error) {
	key, err := pki.EncodeKeyPEM(kp.Key)
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{managedByLabel: managedBy}},
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       pki.EncodeCertPEM(kp.Cert),
			corev1.TLSPrivateKeyKey: key,
		},
	}, nil
}

func keyPairFromSecret(sec *corev1.Secret) (*pki.KeyPair, error) {
	where := sec.Namespace + "/" + sec.Name
	cert, err := pki.ParseCertPEM(sec.Data[corev1.TLSCertKey])
	if err != nil {
		return nil, fmt.Errorf("secret %s %s: %w", where, corev1.TLSCertKey, err)
	}
	key, err := pki.ParseKeyPEM(sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("secret %s %s: %w", where, corev1.TLSPrivateKeyKey, err)
	}
	kp := &pki.KeyPair{Cert: cert, Key: key}
	if err := kp.Validate(); err != nil {
		return nil, fmt.Errorf("secret %s: %w", where, err)
	}
	return kp, nil
}

func caFromSecret(sec *corev1.Secret) (*pki.CA, error) {
	kp, err := keyPairFromSecret(sec)
	if err != nil {
		return nil, err
	}
	ca, err := pki.AsCA(kp)
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	return ca, nil
}
