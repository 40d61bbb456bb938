package bootstrap

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/skerry-io/skerry/pkg/pki"
)

type testCloud struct {
	ca    *pki.CA
	store *SecretStore
	srv   *Server
	ts    *httptest.Server
	logs  *bytes.Buffer
}

func newTestCloud(t *testing.T) *testCloud {
	t.Helper()
	ca := newTestCA(t)
	logs := &bytes.Buffer{}
	c := &testCloud{ca: ca, store: NewSecretStore(fake.NewClientset(), ""), logs: logs}
	srv, err := NewServer(Config{CA: ca, Tokens: c.store, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c.srv = srv
	serving, err := ca.IssueServer("cloudcore", nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.ts = httptest.NewUnstartedServer(srv)
	c.ts.TLS = srv.TLSConfig(tls.Certificate{Certificate: [][]byte{serving.Cert.Raw}, PrivateKey: serving.Key})
	c.ts.StartTLS()
	t.Cleanup(c.ts.Close)
	return c
}

func (c *testCloud) token(t *testing.T, opts TokenOptions) Token {
	t.Helper()
	tok, err := CreateToken(context.Background(), c.store, c.ca.Cert, opts, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends a CSR to /edge.crt, optionally with a client certificate, and returns status and body.
func (c *testCloud) post(t *testing.T, body []byte, auth, node string, clientCert *pki.KeyPair) (int, []byte) {
	t.Helper()
	cfg := &tls.Config{RootCAs: c.ca.Pool()}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{clientCert.Cert.Raw}, PrivateKey: clientCert.Key}}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, c.ts.URL+"/edge.crt", bytes.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if node != "" {
		req.Header.Set(NodeNameHeader, node)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func csrFor(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func nodeSubject(name string) pkix.Name {
	return pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}}
}

func p256(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestIssueWithToken(t *testing.T) {
	c := newTestCloud(t)
	tok := c.token(t, TokenOptions{})
	key := p256(t)
	for _, auth := range []string{"Bearer " + tok.Bearer(), "Bearer " + tok.String()} {
		code, body := c.post(t, csrFor(t, key, &x509.CertificateRequest{Subject: nodeSubject("edge-1")}), auth, "edge-1", nil)
		if code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
		cert, err := x509.ParseCertificate(body)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ca.Verify(cert, pki.UsageClient, time.Now()); err != nil {
			t.Fatal(err)
		}
		if cert.Subject.CommonName != "system:node:edge-1" || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "system:nodes" {
			t.Fatalf("subject %s", cert.Subject)
		}
		if d := cert.NotAfter.Sub(cert.NotBefore); d < 364*24*time.Hour || d > 366*24*time.Hour {
			t.Fatalf("validity %v, want one year", d)
		}
	}
	if strings.Contains(c.logs.String(), tok.Secret) {
		t.Fatal("token secret logged")
	}
	if !strings.Contains(c.logs.String(), "node=edge-1") {
		t.Fatalf("log does not name the node:\n%s", c.logs)
	}
}

func TestCAEndpoint(t *testing.T) {
	c := newTestCloud(t)
	resp, err := c.ts.Client().Get(c.ts.URL + "/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(b, c.ca.Cert.Raw) || resp.Header.Get("Content-Type") != CertContentType {
		t.Fatalf("ca.crt: %q, %d bytes", resp.Header.Get("Content-Type"), len(b))
	}
}

func TestRefusals(t *testing.T) {
	c := newTestCloud(t)
	tok := c.token(t, TokenOptions{})
	good := "Bearer " + tok.Bearer()
	key := p256(t)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	csr := func(k crypto.Signer, r *x509.CertificateRequest) []byte { return csrFor(t, k, r) }
	valid := csr(key, &x509.CertificateRequest{Subject: nodeSubject("edge-1")})
	otherCA := newTestCA(t)
	wrongPin := Token{CAHash: CAHash(otherCA.Cert), ID: tok.ID, Secret: tok.Secret}

	tests := []struct {
		name, auth, node string
		body             []byte
		code             int
		msg              string
	}{
		{"no auth no cert", "", "edge-1", valid, 401, "keadm gettoken"},
		{"not bearer", "Basic abc", "edge-1", valid, 401, "Bearer"},
		{"malformed token", "Bearer nope", "edge-1", valid, 401, "malformed"},
		{"wrong secret", "Bearer " + tok.ID + "." + strings.Repeat("0", 48), "edge-1", valid, 401, "unknown"},
		{"full token for other CA", "Bearer " + wrongPin.String(), "edge-1", valid, 401, "another cloudcore"},
		{"missing node name", good, "", valid, 400, "NodeName"},
		{"invalid node name", good, "Edge_1", valid, 400, "DNS-1123"},
		{"not a CSR", good, "edge-1", []byte("hello"), 400, "DER certificate request"},
		{"wrong CN", good, "edge-1", csr(key, &x509.CertificateRequest{Subject: nodeSubject("edge-2")}), 400, "CN=system:node:edge-1"},
		{"extra OU", good, "edge-1", csr(key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:edge-1", Organization: []string{"system:nodes"}, OrganizationalUnit: []string{"x"}}}), 400, "exactly"},
		{"extra group", good, "edge-1", csr(key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:edge-1", Organization: []string{"system:nodes", "system:masters"}}}), 400, "exactly"},
		{"DNS SAN", good, "edge-1", csr(key, &x509.CertificateRequest{Subject: nodeSubject("edge-1"), DNSNames: []string{"evil"}}), 400, "alternative names"},
		{"IP SAN", good, "edge-1", csr(key, &x509.CertificateRequest{Subject: nodeSubject("edge-1"), IPAddresses: []net.IP{net.IPv4(1, 2, 3, 4)}}), 400, "alternative names"},
		{"email SAN", good, "edge-1", csr(key, &x509.CertificateRequest{Subject: nodeSubject("edge-1"), EmailAddresses: []string{"a@b"}}), 400, "alternative names"},
		{"weak RSA", good, "edge-1", csr(rsa1024, &x509.CertificateRequest{Subject: nodeSubject("edge-1")}), 400, "too weak"},
		{"ed25519", good, "edge-1", csr(edKey, &x509.CertificateRequest{Subject: nodeSubject("edge-1")}), 400, "not accepted"},
		{"P-224", good, "edge-1", csr(p224, &x509.CertificateRequest{Subject: nodeSubject("edge-1")}), 400, "P-224"},
		{"too big", good, "edge-1", make([]byte, MaxCSRSize+1), 413, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := c.post(t, tt.body, tt.auth, tt.node, nil)
			if code != tt.code || !strings.Contains(string(body), tt.msg) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tt.code, tt.msg)
			}
		})
	}
	// None of the refusals consumed or damaged the token.
	if code, body := c.post(t, valid, good, "edge-1", nil); code != 200 {
		t.Fatalf("token unusable after refusals: %d %s", code, body)
	}
}

func TestRenewalOverMTLS(t *testing.T) {
	c := newTestCloud(t)
	edge1, err := c.ca.IssueClient("system:node:edge-1", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	key := p256(t)
	code, body := c.post(t, csrFor(t, key, &x509.CertificateRequest{Subject: nodeSubject("edge-1")}), "", "edge-1", edge1)
	if code != 200 {
		t.Fatalf("renewal: %d %s", code, body)
	}
	cert, _ := x509.ParseCertificate(body)
	if cert.Subject.CommonName != "system:node:edge-1" {
		t.Fatalf("renewed %s", cert.Subject)
	}

	// Another node's certificate cannot renew edge-1, whether it says so in the header or only in the CSR.
	edge2, _ := c.ca.IssueClient("system:node:edge-2", "system:nodes")
	csr1 := csrFor(t, key, &x509.CertificateRequest{Subject: nodeSubject("edge-1")})
	if code, body := c.post(t, csr1, "", "edge-1", edge2); code != 403 {
		t.Fatalf("edge-2 renewing edge-1 via header: %d %s", code, body)
	}
	if code, body := c.post(t, csr1, "", "", edge2); code != 400 {
		t.Fatalf("edge-2 renewing edge-1 via CSR: %d %s", code, body)
	}
	// A client certificate that is not a node identity is refused.
	admin, _ := c.ca.IssueClient("admin", "system:masters")
	if code, body := c.post(t, csr1, "", "edge-1", admin); code != 403 {
		t.Fatalf("admin cert: %d %s", code, body)
	}
}

// FuzzCheckCSR: the CSR comes from the network; whatever it holds, checkCSR either refuses it
// with a 400 or accepts exactly the node identity.
func FuzzCheckCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: nodeSubject("edge-1")}, key)
	bad, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: nodeSubject("edge-1"), DNSNames: []string{"x"}}, key)
	f.Add(good)
	f.Add(bad)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		pub, err := checkCSR(der, "edge-1")
		if err != nil {
			he, ok := err.(*httpError)
			if !ok || he.status != http.StatusBadRequest {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		csr, perr := x509.ParseCertificateRequest(der)
		if perr != nil || csr.Subject.CommonName != "system:node:edge-1" || len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses)+len(csr.URIs) != 0 || pub == nil {
			t.Fatalf("accepted %+v", csr)
		}
	})
}
