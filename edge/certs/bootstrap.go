// Package certs gives an edge node its identity: it joins the cloud with a token (Bootstrap),
// keeps the CA, key and certificate under <dataDir>/certs, and renews the certificate over mTLS
// before it expires (RenewAt, Renew).
package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skerry-io/skerry/pkg/pki"
)

// File names under <dataDir>/certs.
const (
	CAFile   = "ca.crt"
	KeyFile  = "node.key"
	CertFile = "node.crt"
)

const (
	maxCertSize    = 64 << 10 // a DER certificate is a few KiB
	requestTimeout = 30 * time.Second
	nodeGroup      = "system:nodes"
	nodeUserPrefix = "system:node:"
)

// ErrCertExpired is returned by Load when the node certificate is no longer valid. A node whose
// certificate expired cannot renew it (renewal authenticates with that certificate).
var ErrCertExpired = errors.New("node certificate expired")

// ErrCAMismatch means the CA the cloud served is not the one the token pins.
var ErrCAMismatch = errors.New("CA hash mismatch: the token was made for another cloudcore")

// Dir returns the directory holding the node's certificates.
func Dir(dataDir string) string { return filepath.Join(dataDir, "certs") }

// Credentials are the files Bootstrap and Renew write.
type Credentials struct {
	CA   *x509.Certificate
	Node *pki.KeyPair
}

// ClientTLSConfig trusts only the cloud CA and presents the node certificate.
func (c *Credentials) ClientTLSConfig(serverName string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(c.CA)
	return &tls.Config{
		RootCAs:    pool,
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{c.Node.Cert.Raw},
			PrivateKey:  c.Node.Key,
			Leaf:        c.Node.Cert,
		}},
	}
}

// Bootstrap joins the cloud at cloudAddr ("host:port" or "https://host:port") with a join token
// "<CA hash>.<bearer>", and stores ca.crt, node.key and node.crt under <dataDir>/certs.
func Bootstrap(ctx context.Context, cloudAddr, token, nodeName, dataDir string) (*Credentials, error) {
	base, err := baseURL(cloudAddr)
	if err != nil {
		return nil, err
	}
	hashHex, bearer, ok := strings.Cut(strings.TrimSpace(token), ".")
	wantHash, herr := hex.DecodeString(hashHex)
	if !ok || herr != nil || len(wantHash) != sha256.Size || bearer == "" {
		return nil, errors.New("malformed join token: want <64 hex characters>.<secret> as printed by `keadm gettoken`")
	}
	if nodeName == "" {
		return nil, errors.New("node name is empty")
	}

	ca, err := fetchCA(ctx, base, wantHash)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	client := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	cert, err := requestCert(ctx, client, base, key, nodeName, "Bearer "+bearer)
	if err != nil {
		return nil, err
	}
	creds := &Credentials{CA: ca, Node: &pki.KeyPair{Cert: cert, Key: key}}
	if err := store(dataDir, creds); err != nil {
		return nil, err
	}
	return creds, nil
}

// Renew asks for a new certificate for a new key, authenticating with the current one, and
// replaces the stored key and certificate.
func Renew(ctx context.Context, cloudAddr, dataDir string) (*Credentials, error) {
	base, err := baseURL(cloudAddr)
	if err != nil {
		return nil, err
	}
	cur, err := Load(dataDir)
	if err != nil {
		return nil, err
	}
	nodeName := strings.TrimPrefix(cur.Node.Cert.Subject.CommonName, nodeUserPrefix)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	client := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		TLSClientConfig: cur.ClientTLSConfig(""),
	}}
	defer client.CloseIdleConnections()
	cert, err := requestCert(ctx, client, base, key, nodeName, "")
	if err != nil {
		return nil, err
	}
	creds := &Credentials{CA: cur.CA, Node: &pki.KeyPair{Cert: cert, Key: key}}
	if err := store(dataDir, creds); err != nil {
		return nil, err
	}
	return creds, nil
}

// Load reads the stored credentials. If the node certificate has expired it returns an error
// wrapping ErrCertExpired that tells the operator how to recover.
func Load(dataDir string) (*Credentials, error) {
	dir := Dir(dataDir)
	caPEM, err := pki.ReadPEMFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("node not joined yet? %w", err)
	}
	ca, err := pki.ParseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, CAFile), err)
	}
	kp, err := pki.LoadKeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	if now := time.Now(); now.After(kp.Cert.NotAfter) {
		return nil, fmt.Errorf("%w at %s (%s): it can no longer be renewed; rejoin the node: get a new token with `keadm gettoken` on the cloud, set it as hub.token in edgecore's configuration, remove %s and start edgecore again",
			ErrCertExpired, kp.Cert.NotAfter.UTC().Format(time.RFC3339), filepath.Join(dir, CertFile), dir)
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: poolOf(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%s does not chain to %s: %w", filepath.Join(dir, CertFile), filepath.Join(dir, CAFile), err)
	}
	return &Credentials{CA: ca, Node: kp}, nil
}

// RenewAt picks when to renew cert: at a random point between 70 % and 90 % of its lifetime, so
// that nodes joined together do not all renew at once and a failed attempt leaves time to retry.
// rnd may be nil.
func RenewAt(cert *x509.Certificate, rnd *mrand.Rand) time.Time {
	f := mrand.Float64
	if rnd != nil {
		f = rnd.Float64
	}
	life := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotBefore.Add(time.Duration(float64(life) * (0.7 + 0.2*f())))
}

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

func baseURL(addr string) (*url.URL, error) {
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("cloud address %q: want host:port or https://host:port", addr)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// fetchCA downloads the CA without verifying the server, which is safe only because the result
// is pinned to the hash in the token before anything trusts it.
func fetchCA(ctx context.Context, base *url.URL, wantHash []byte) (*x509.Certificate, error) {
	client := &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, // pinned to the token below
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.JoinPath("ca.crt").String(), nil)
	if err != nil {
		return nil, err
	}
	der, err := do(client, req)
	if err != nil {
		return nil, fmt.Errorf("download CA from %s: %w", base.Host, err)
	}
	got := sha256.Sum256(der)
	if !bytes.Equal(got[:], wantHash) {
		return nil, fmt.Errorf("%w (cloud at %s serves a CA with hash %x): check the cloud address, or get a token from this cloudcore with `keadm gettoken`", ErrCAMismatch, base.Host, got)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA from %s: %w", base.Host, err)
	}
	if !ca.IsCA {
		return nil, fmt.Errorf("certificate served by %s as /ca.crt is not a CA", base.Host)
	}
	return ca, nil
}

func requestCert(ctx context.Context, client *http.Client, base *url.URL, key *ecdsa.PrivateKey, nodeName, auth string) (*x509.Certificate, error) {
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: nodeUserPrefix + nodeName, Organization: []string{nodeGroup}},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.JoinPath("edge.crt").String(), bytes.NewReader(csr))
	if err != nil {
		return nil, err
	}
	req.Header.Set("NodeName", nodeName)
	req.Header.Set("Content-Type", "application/pkcs10")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	der, err := do(client, req)
	if err != nil {
		return nil, fmt.Errorf("request node certificate from %s: %w", base.Host, explainTLS(err, base.Hostname()))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse node certificate: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) || cert.Subject.CommonName != nodeUserPrefix+nodeName {
		return nil, errors.New("cloud returned a certificate for another key or node")
	}
	return cert, nil
}

// do sends req and returns the body of a 200 answer, or the server's explanation otherwise.
func do(client *http.Client, req *http.Request) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCertSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxCertSize {
		return nil, fmt.Errorf("answer larger than %d bytes", maxCertSize)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{Code: resp.StatusCode, Message: strings.TrimSpace(string(body))}
	}
	return body, nil
}

// StatusError is a refusal by the cloud; Message says what to do.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("cloud answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Message)
}

// explainTLS turns a host name mismatch into advice: which names the serving certificate has and
// how to make it match the address edgecore uses.
func explainTLS(err error, host string) error {
	var he x509.HostnameError
	if !errors.As(err, &he) || he.Certificate == nil {
		return err
	}
	c := he.Certificate
	ips := make([]string, len(c.IPAddresses))
	for i, ip := range c.IPAddresses {
		ips[i] = ip.String()
	}
	kind := "DNS name"
	if net.ParseIP(host) != nil {
		kind = "IP address"
	}
	return fmt.Errorf("cloudcore's serving certificate is not valid for the %s %q (it carries DNS names [%s] and IP addresses [%s]): "+
		"connect to one of those, or add %q to cloudcore's advertise addresses or DNS names (modules.cloudHub.advertiseAddress / modules.cloudHub.dnsNames in cloudcore.yaml) and restart cloudcore so it re-issues its certificate: %w",
		kind, host, strings.Join(c.DNSNames, ", "), strings.Join(ips, ", "), host, err)
}

// store writes the CA first and the key pair last (pki.WriteKeyPair: key before certificate), so
// a crash never leaves a certificate that looks complete with the wrong key.
func store(dataDir string, c *Credentials) error {
	dir := Dir(dataDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := pki.WriteCertFile(filepath.Join(dir, CAFile), c.CA); err != nil {
		return err
	}
	return pki.WriteKeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), c.Node)
}
