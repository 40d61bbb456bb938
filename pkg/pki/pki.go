// Package pki creates certificate authorities and issues certificates from them, with the standard
// library only. The local cluster (hack/cmd/localpki) and cloudcore's bootstrap service share it,
// so the rules about what a certificate may be used for live in one place.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Default lifetimes. A CA outlives many leaf rotations; leaves are renewed well before a year.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultCertValidity = 365 * 24 * time.Hour
)

// clockSkew backdates NotBefore so a certificate is accepted at once by a peer whose clock is a
// little behind ours.
const clockSkew = 5 * time.Minute

// KeyType selects the algorithm of a generated private key. The zero value is ECDSA P-256:
// small, fast, and accepted by every Kubernetes component.
type KeyType int

const (
	ECDSAP256 KeyType = iota
	// RSA2048 is for consumers that expect RSA, e.g. service-account tokens signed with RS256.
	RSA2048
)

func (t KeyType) String() string {
	switch t {
	case ECDSAP256:
		return "ECDSA-P256"
	case RSA2048:
		return "RSA-2048"
	default:
		return fmt.Sprintf("KeyType(%d)", int(t))
	}
}

// GenerateKey returns a new private key of type t.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("pki: unknown key type %v", t)
	}
}

// Usage says what a leaf certificate may be used for (its extended key usage).
type Usage int

const (
	UsageServer Usage = 1 << iota
	UsageClient
)

func (u Usage) extKeyUsage() []x509.ExtKeyUsage {
	var eku []x509.ExtKeyUsage
	if u&UsageServer != 0 {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if u&UsageClient != 0 {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	return eku
}

// KeyPair is a certificate and its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Validate reports whether Key is the private key of Cert.
func (kp *KeyPair) Validate() error {
	if kp == nil || kp.Cert == nil || kp.Key == nil {
		return errors.New("pki: incomplete key pair")
	}
	pub, ok := kp.Cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(kp.Key.Public()) {
		return errors.New("pki: private key does not match certificate")
	}
	return nil
}

// CA is a certificate authority: a CA certificate and the key that signs with it.
type CA struct {
	KeyPair
}

// CAConfig describes a self-signed CA.
type CAConfig struct {
	CommonName   string
	Organization []string
	// Validity defaults to DefaultCAValidity.
	Validity time.Duration
	KeyType  KeyType
}

// NewCA creates a self-signed CA. It may sign leaf certificates only (path length 0): nothing
// here needs intermediates, and a leaked leaf key then cannot mint new identities.
func NewCA(cfg CAConfig) (*CA, error) {
	if cfg.CommonName == "" {
		return nil, errors.New("pki: CA needs a common name")
	}
	key, err := GenerateKey(cfg.KeyType)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cfg.CommonName, Organization: cfg.Organization},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(orDefault(cfg.Validity, DefaultCAValidity)),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	return &CA{KeyPair{Cert: cert, Key: key}}, nil
}

// AsCA checks that kp can act as a CA (a CA certificate with its own key) and wraps it.
func AsCA(kp *KeyPair) (*CA, error) {
	if err := kp.Validate(); err != nil {
		return nil, err
	}
	if !kp.Cert.IsCA || kp.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("pki: %q is not a CA certificate", kp.Cert.Subject.CommonName)
	}
	return &CA{*kp}, nil
}

// Pool returns a certificate pool that trusts only this CA.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// Request describes a leaf certificate to issue.
type Request struct {
	CommonName   string
	Organization []string
	DNSNames     []string
	IPAddresses  []net.IP
	Usage        Usage
	// Validity defaults to DefaultCertValidity; it is cut to the CA's own expiry.
	Validity time.Duration
	// KeyType is used by Issue when it generates the key.
	KeyType KeyType
}

// Sign issues a certificate for pub as described by req. It is the building block for Issue and
// for signing certificate requests whose key the CA never sees.
func (ca *CA) Sign(pub crypto.PublicKey, req Request) (*x509.Certificate, error) {
	if req.CommonName == "" {
		return nil, errors.New("pki: certificate needs a common name")
	}
	if req.Usage == 0 || req.Usage&^(UsageServer|UsageClient) != 0 {
		return nil, fmt.Errorf("pki: invalid usage %d", req.Usage)
	}
	keyUsage := x509.KeyUsageDigitalSignature
	switch pub.(type) {
	case *rsa.PublicKey:
		// RSA key exchange in TLS 1.2 encrypts with the certificate key.
		keyUsage |= x509.KeyUsageKeyEncipherment
	case *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("pki: unsupported public key type %T", pub)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(orDefault(req.Validity, DefaultCertValidity))
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.CommonName, Organization: req.Organization},
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              keyUsage,
		ExtKeyUsage:           req.Usage.extKeyUsage(),
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign %q: %w", req.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse %q: %w", req.CommonName, err)
	}
	return cert, nil
}

// Issue generates a key of type req.KeyType and signs a certificate for it.
func (ca *CA) Issue(req Request) (*KeyPair, error) {
	key, err := GenerateKey(req.KeyType)
	if err != nil {
		return nil, fmt.Errorf("pki: generate key for %q: %w", req.CommonName, err)
	}
	cert, err := ca.Sign(key.Public(), req)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// IssueServer issues a TLS serving certificate (ECDSA P-256, default validity) for the given
// names and addresses.
func (ca *CA) IssueServer(commonName string, dnsNames []string, ips []net.IP) (*KeyPair, error) {
	return ca.Issue(Request{CommonName: commonName, DNSNames: dnsNames, IPAddresses: ips, Usage: UsageServer})
}

// IssueClient issues a TLS client certificate. Kubernetes reads the user name from the common
// name and the groups from the organizations.
func (ca *CA) IssueClient(commonName string, organizations ...string) (*KeyPair, error) {
	return ca.Issue(Request{CommonName: commonName, Organization: organizations, Usage: UsageClient})
}

// Verify checks that cert chains to this CA, is valid at the given time and allows usage.
func (ca *CA) Verify(cert *x509.Certificate, usage Usage, at time.Time) error {
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       ca.Pool(),
		CurrentTime: at,
		KeyUsages:   usage.extKeyUsage(),
	})
	if err != nil {
		return fmt.Errorf("pki: verify %q: %w", cert.Subject.CommonName, err)
	}
	return nil
}

// Matches reports whether cert carries exactly the identity req asks for: common name,
// organizations, DNS names, IP addresses (in any order) and usage. A caller that keeps existing
// certificates uses it to notice that the wanted identity changed.
func (req Request) Matches(cert *x509.Certificate) error {
	switch {
	case cert.Subject.CommonName != req.CommonName:
		return fmt.Errorf("pki: common name %q, want %q", cert.Subject.CommonName, req.CommonName)
	case !sameSet(cert.Subject.Organization, req.Organization):
		return fmt.Errorf("pki: %q: organizations %q, want %q", req.CommonName, cert.Subject.Organization, req.Organization)
	case !sameSet(cert.DNSNames, req.DNSNames):
		return fmt.Errorf("pki: %q: DNS names %q, want %q", req.CommonName, cert.DNSNames, req.DNSNames)
	case !sameSet(ipStrings(cert.IPAddresses), ipStrings(req.IPAddresses)):
		return fmt.Errorf("pki: %q: IP addresses %v, want %v", req.CommonName, cert.IPAddresses, req.IPAddresses)
	case !sameSet(cert.ExtKeyUsage, req.Usage.extKeyUsage()):
		return fmt.Errorf("pki: %q: extended key usage %v, want %v", req.CommonName, cert.ExtKeyUsage, req.Usage.extKeyUsage())
	}
	return nil
}

func newSerial() (*big.Int, error) {
	// 128 random bits: serials must be unique per CA and RFC 5280 allows up to 20 octets.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return serial, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func ipStrings(ips []net.IP) []string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return s
}

func sameSet[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}
