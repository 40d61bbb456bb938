package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestCA(t *testing.T, name string) *CA {
	t.Helper()
	ca, err := NewCA(CAConfig{CommonName: name})
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

func TestNewCAIsASelfSignedRootThatSignsOnlyLeaves(t *testing.T) {
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		t.Run(kt.String(), func(t *testing.T) {
			ca, err := NewCA(CAConfig{CommonName: "test-ca", Organization: []string{"skerry"}, KeyType: kt})
			if err != nil {
				t.Fatal(err)
			}
			c := ca.Cert
			if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
				t.Errorf("CA constraints: IsCA=%v valid=%v maxPathLen=%d zero=%v", c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
			}
			if c.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("CA key usage %v lacks CertSign", c.KeyUsage)
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("not self-signed: %v", err)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Pool()}); err != nil {
				t.Errorf("CA does not verify against itself: %v", err)
			}
			if got := c.NotAfter.Sub(c.NotBefore); got < DefaultCAValidity {
				t.Errorf("validity %v, want at least %v", got, DefaultCAValidity)
			}
			if err := ca.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestNewCARequiresACommonName(t *testing.T) {
	if _, err := NewCA(CAConfig{}); err == nil {
		t.Fatal("NewCA without a common name succeeded")
	}
}

func TestServerCertChainsToItsCAAndCoversItsNames(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")}
	kp, err := ca.IssueServer("kube-apiserver", []string{"localhost", "kubernetes.default.svc"}, ips)
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "kubernetes.default.svc", "127.0.0.1", "10.96.0.1"} {
		_, err := kp.Cert.Verify(x509.VerifyOptions{
			Roots: ca.Pool(), DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("verify for %q: %v", name, err)
		}
	}
	if err := kp.Cert.VerifyHostname("example.com"); err == nil {
		t.Error("certificate is valid for a name it was not issued for")
	}
	if err := ca.Verify(kp.Cert, UsageServer, time.Now()); err != nil {
		t.Errorf("CA.Verify(server): %v", err)
	}
	if err := ca.Verify(kp.Cert, UsageClient, time.Now()); err == nil {
		t.Error("a serving certificate verified for client authentication")
	}
	if kp.Cert.IsCA {
		t.Error("leaf certificate is a CA")
	}
}

func TestClientCertCarriesUserAndGroups(t *testing.T) {
	ca := newTestCA(t, "cluster-ca")
	kp, err := ca.IssueClient("kubernetes-admin", "system:masters", "devs")
	if err != nil {
		t.Fatal(err)
	}
	if got := kp.Cert.Subject.CommonName; got != "kubernetes-admin" {
		t.Errorf("CN = %q", got)
	}
	// DER sorts the values of a SET, so only membership is preserved.
	if got := kp.Cert.Subject.Organization; !sameSet(got, []string{"system:masters", "devs"}) {
		t.Errorf("O = %q", got)
	}
	if err := ca.Verify(kp.Cert, UsageClient, time.Now()); err != nil {
		t.Errorf("CA.Verify(client): %v", err)
	}
	if err := ca.Verify(kp.Cert, UsageServer, time.Now()); err == nil {
		t.Error("a client certificate verified for serving")
	}
}

func TestCertFromAnotherCAIsRejected(t *testing.T) {
	ca, other := newTestCA(t, "ca"), newTestCA(t, "other-ca")
	kp, err := other.IssueClient("mallory")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Verify(kp.Cert, UsageClient, time.Now()); err == nil {
		t.Fatal("certificate from another CA verified")
	}
}

func TestExpiredCertIsRejected(t *testing.T) {
	ca := newTestCA(t, "ca")
	kp, err := ca.Issue(Request{CommonName: "short", Usage: UsageClient, Validity: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Verify(kp.Cert, UsageClient, time.Now().Add(2*time.Hour)); err == nil {
		t.Fatal("expired certificate verified")
	}
}

func TestLeafValidityIsCutToTheCAExpiry(t *testing.T) {
	ca, err := NewCA(CAConfig{CommonName: "ca", Validity: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue(Request{CommonName: "leaf", Usage: UsageServer, Validity: 1000 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if kp.Cert.NotAfter.After(ca.Cert.NotAfter) {
		t.Fatalf("leaf expires %v, after its CA %v", kp.Cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestRSALeafKeyUsage(t *testing.T) {
	ca := newTestCA(t, "ca")
	kp, err := ca.Issue(Request{CommonName: "rsa", Usage: UsageServer | UsageClient, KeyType: RSA2048})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := kp.Key.(*rsa.PrivateKey); !ok {
		t.Fatalf("key is %T, want RSA", kp.Key)
	}
	if kp.Cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Error("RSA leaf lacks KeyEncipherment")
	}
	for _, u := range []Usage{UsageServer, UsageClient} {
		if err := ca.Verify(kp.Cert, u, time.Now()); err != nil {
			t.Errorf("Verify(%d): %v", u, err)
		}
	}
}

func TestSignRejectsBadRequests(t *testing.T) {
	ca := newTestCA(t, "ca")
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		pub crypto.PublicKey
		req Request
	}{
		"no common name":  {key.Public(), Request{Usage: UsageClient}},
		"no usage":        {key.Public(), Request{CommonName: "x"}},
		"unknown usage":   {key.Public(), Request{CommonName: "x", Usage: 1 << 7}},
		"unsupported key": {edPub, Request{CommonName: "x", Usage: UsageClient}},
	} {
		if _, err := ca.Sign(tc.pub, tc.req); err == nil {
			t.Errorf("%s: Sign succeeded", name)
		}
	}
	if _, err := GenerateKey(KeyType(42)); err == nil {
		t.Error("GenerateKey(42) succeeded")
	}
}

func TestSignWithAForeignKeyServesCSRs(t *testing.T) {
	// The bootstrap service signs keys it never sees: only the public key comes in.
	ca := newTestCA(t, "ca")
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Sign(key.Public(), Request{CommonName: "system:node:edge-1", Organization: []string{"system:nodes"}, Usage: UsageClient})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&KeyPair{Cert: cert, Key: key}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestAsCARejectsLeavesAndMismatchedKeys(t *testing.T) {
	ca := newTestCA(t, "ca")
	leaf, err := ca.IssueClient("leaf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AsCA(leaf); err == nil {
		t.Error("AsCA accepted a leaf")
	}
	other := newTestCA(t, "other")
	if _, err := AsCA(&KeyPair{Cert: ca.Cert, Key: other.Key}); err == nil {
		t.Error("AsCA accepted a CA certificate with another CA's key")
	}
	if _, err := AsCA(&ca.KeyPair); err != nil {
		t.Errorf("AsCA(ca): %v", err)
	}
}

func TestRequestMatches(t *testing.T) {
	ca := newTestCA(t, "ca")
	req := Request{
		CommonName:  "kube-apiserver",
		DNSNames:    []string{"a", "b"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		Usage:       UsageServer,
	}
	kp, err := ca.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	reordered := req
	reordered.DNSNames = []string{"b", "a"}
	reordered.IPAddresses = []net.IP{net.IPv4(10, 96, 0, 1), net.IPv4(127, 0, 0, 1)}
	if err := reordered.Matches(kp.Cert); err != nil {
		t.Errorf("same identity in another order: %v", err)
	}
	changes := map[string]func(r *Request){
		"common name": func(r *Request) { r.CommonName = "other" },
		"org":         func(r *Request) { r.Organization = []string{"system:masters"} },
		"dns":         func(r *Request) { r.DNSNames = []string{"a"} },
		"ip":          func(r *Request) { r.IPAddresses = r.IPAddresses[:1] },
		"usage":       func(r *Request) { r.Usage = UsageClient },
	}
	for name, change := range changes {
		r := req
		change(&r)
		if err := r.Matches(kp.Cert); err == nil {
			t.Errorf("%s changed but Matches succeeded", name)
		}
	}
}

func TestMutualTLSHandshake(t *testing.T) {
	ca := newTestCA(t, "ca")
	server, err := ca.IssueServer("server", []string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.IssueClient("client", "group")
	if err != nil {
		t.Fatal(err)
	}
	tlsCert := func(kp *KeyPair) tls.Certificate {
		return tls.Certificate{Certificate: [][]byte{kp.Cert.Raw}, PrivateKey: kp.Key, Leaf: kp.Cert}
	}
	// A real socket: net.Pipe is unbuffered, and the TLS 1.3 session tickets the server writes
	// after the handshake would block until their deadline.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		peer string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		srv := tls.Server(c, &tls.Config{
			Certificates: []tls.Certificate{tlsCert(server)},
			ClientCAs:    ca.Pool(),
			ClientAuth:   tls.RequireAndVerifyClientCert,
		})
		if err := srv.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		done <- result{peer: srv.ConnectionState().PeerCertificates[0].Subject.CommonName}
	}()
	cli, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		Certificates: []tls.Certificate{tlsCert(client)},
		RootCAs:      ca.Pool(),
		ServerName:   "localhost",
	})
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	defer cli.Close()
	res := <-done
	if res.err != nil {
		t.Fatalf("server handshake: %v", res.err)
	}
	if res.peer != "client" {
		t.Fatalf("server saw client %q", res.peer)
	}
}

func TestPEMRoundTrip(t *testing.T) {
	ca := newTestCA(t, "ca")
	certs, err := ParseCertsPEM(append(EncodeCertPEM(ca.Cert), EncodeCertPEM(ca.Cert)...))
	if err != nil || len(certs) != 2 || !certs[0].Equal(ca.Cert) {
		t.Fatalf("ParseCertsPEM(bundle) = %d certs, %v", len(certs), err)
	}
	for _, kt := range []KeyType{ECDSAP256, RSA2048} {
		key, err := GenerateKey(kt)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := EncodeKeyPEM(key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseKeyPEM(keyPEM)
		if err != nil {
			t.Fatalf("%v: ParseKeyPEM: %v", kt, err)
		}
		if !got.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Errorf("%v: key changed in round trip", kt)
		}
		pubPEM, err := EncodePublicKeyPEM(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		pub, err := ParsePublicKeyPEM(pubPEM)
		if err != nil {
			t.Fatalf("%v: ParsePublicKeyPEM: %v", kt, err)
		}
		if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Errorf("%v: public key changed in round trip", kt)
		}
	}
}

func TestParseKeyPEMReadsLegacyFormats(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for typ, der := range map[string][]byte{
		"EC PRIVATE KEY":  ecDER,
		"RSA PRIVATE KEY": x509.MarshalPKCS1PrivateKey(rsaKey),
	} {
		if _, err := ParseKeyPEM(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
}

func TestParseRejectsBadPEM(t *testing.T) {
	ca := newTestCA(t, "ca")
	certPEM := EncodeCertPEM(ca.Cert)
	keyPEM, err := EncodeKeyPEM(ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	edPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER})
	corrupt := bytes.Clone(ca.Cert.Raw)
	corrupt[len(corrupt)/2] ^= 0xff
	truncated := certPEM[:len(certPEM)/2]
	withHeader := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: ca.Cert.Raw})

	certCases := map[string][]byte{
		"empty":            nil,
		"whitespace":       []byte(" \n\t"),
		"not pem":          []byte("hello"),
		"key not cert":     keyPEM,
		"trailing garbage": append(bytes.Clone(certPEM), "junk"...),
		"leading garbage":  append([]byte("junk\n"), certPEM...),
		"between blocks":   bytes.Join([][]byte{certPEM, []byte("junk\n"), certPEM}, nil),
		"truncated":        truncated,
		"corrupt der":      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: corrupt[:len(corrupt)-3]}),
		"headers":          withHeader,
		"too large":        append(bytes.Clone(certPEM), bytes.Repeat([]byte("\n"), MaxPEMSize)...),
	}
	for name, data := range certCases {
		if _, err := ParseCertsPEM(data); err == nil {
			t.Errorf("ParseCertsPEM(%s) succeeded", name)
		}
	}
	if _, err := ParseCertsPEM(nil); !errors.Is(err, ErrNoPEM) {
		t.Errorf("ParseCertsPEM(nil) = %v, want ErrNoPEM", err)
	}
	if _, err := ParseCertPEM(append(bytes.Clone(certPEM), certPEM...)); err == nil {
		t.Error("ParseCertPEM accepted two certificates")
	}

	keyCases := map[string][]byte{
		"empty":       nil,
		"cert as key": certPEM,
		"two keys":    append(bytes.Clone(keyPEM), keyPEM...),
		"ed25519":     edPEM,
		"bad der":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01}}),
		"bad ec der":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("nope")}),
		"bad rsa der": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte("nope")}),
	}
	for name, data := range keyCases {
		if _, err := ParseKeyPEM(data); err == nil {
			t.Errorf("ParseKeyPEM(%s) succeeded", name)
		}
	}

	pubCases := map[string][]byte{
		"empty":       nil,
		"cert as pub": certPEM,
		"bad der":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("nope")}),
		"ed25519":     mustPubPEM(t, edKey.Public()),
	}
	for name, data := range pubCases {
		if _, err := ParsePublicKeyPEM(data); err == nil {
			t.Errorf("ParsePublicKeyPEM(%s) succeeded", name)
		}
	}
}

func mustPubPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestWriteKeyPairModesAndLoad(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "ca")
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := WriteKeyPair(certPath, keyPath, &ca.KeyPair); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{certPath: 0o644, keyPath: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(path), got, want)
		}
	}
	loaded, err := LoadCA(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) {
		t.Error("loaded CA differs")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want 2 (temporary files left behind?)", len(entries))
	}

	// A certificate whose key was replaced does not load.
	other := newTestCA(t, "other")
	if err := WriteKeyFile(keyPath, other.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyPair(certPath, keyPath); err == nil {
		t.Error("LoadKeyPair accepted a key that does not match the certificate")
	}
	if _, err := LoadKeyPair(filepath.Join(dir, "missing.crt"), keyPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestWriteFileAtomicReplacesAndKeepsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != "new" {
		t.Fatalf("content %q, %v", data, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := WriteFileAtomic(filepath.Join(t.TempDir(), "no", "such", "dir"), nil, 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestReadPEMFileRefusesLargeFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.pem")
	if err := os.WriteFile(path, []byte(strings.Repeat("a", MaxPEMSize+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPEMFile(path); err == nil {
		t.Fatal("ReadPEMFile read a file larger than MaxPEMSize")
	}
}
