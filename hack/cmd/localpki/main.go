// Command localpki writes the PKI of the local development cluster (hack/local-up.sh) into a
// directory: CAs, serving and client certificates, the service-account key pair and the
// kubeconfigs of the admin, kube-controller-manager and kube-scheduler.
//
// It is idempotent: a file that is still valid (parses, key matches, chains to the current CA,
// carries the wanted identity and does not expire within -renew-before) is kept; anything
// missing or invalid is regenerated, and a regenerated CA takes all its leaves with it.
//
//	localpki -dir _output/local/pki [-server https://127.0.0.1:6443]
package main

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/skerry-io/skerry/pkg/pki"
)

// Names of the CAs; they appear in error messages and in `openssl x509 -text` output.
const (
	clusterCAName    = "skerry-local-cluster-ca"
	kubeletCAName    = "skerry-local-kubelet-ca"
	frontProxyCAName = "skerry-local-front-proxy-ca"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("localpki: ")
	dir := flag.String("dir", "", "directory to write the PKI into (created if missing)")
	server := flag.String("server", "https://127.0.0.1:6443", "API server URL written into the kubeconfigs")
	serviceIP := flag.String("service-ip", "10.96.0.1", "first IP of the service CIDR (the kubernetes Service), added to the apiserver certificate")
	renewBefore := flag.Duration("renew-before", 30*24*time.Hour, "regenerate certificates that expire sooner than this")
	flag.Parse()
	if *dir == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	ip := net.ParseIP(*serviceIP)
	if ip == nil {
		log.Fatalf("-service-ip %q is not an IP address", *serviceIP)
	}
	w := &writer{dir: *dir, validUntil: time.Now().Add(*renewBefore)}
	if err := w.run(*server, ip); err != nil {
		log.Fatal(err)
	}
}

// writer keeps or (re)generates each file in dir.
type writer struct {
	dir        string
	validUntil time.Time // certificates must be valid at least until then to be kept
	written    int
}

func (w *writer) run(server string, serviceIP net.IP) error {
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return err
	}

	clusterCA, err := w.ca("ca", clusterCAName)
	if err != nil {
		return err
	}
	// Only the files of the kubelet CA are needed here: the apiserver verifies kubelet (and
	// edged) serving certificates with it, and whoever runs those serving endpoints signs with it.
	if _, err := w.ca("kubelet-ca", kubeletCAName); err != nil {
		return err
	}
	frontProxyCA, err := w.ca("front-proxy-ca", frontProxyCAName)
	if err != nil {
		return err
	}

	leaves := []struct {
		name string
		ca   *pki.CA
		req  pki.Request
	}{
		{"apiserver", clusterCA, pki.Request{
			CommonName: "kube-apiserver",
			DNSNames: []string{
				"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local",
			},
			// Only loopback: the apiserver binds 127.0.0.1, and ::1 is not served.
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), serviceIP},
			Usage:       pki.UsageServer,
		}},
		{"admin", clusterCA, clientReq("kubernetes-admin", "system:masters")},
		{"controller-manager", clusterCA, clientReq("system:kube-controller-manager")},
		{"scheduler", clusterCA, clientReq("system:kube-scheduler")},
		// The apiserver's identity towards kubelets (and edged's kubelet-style API) for
		// logs/exec/attach/port-forward.
		{"apiserver-kubelet-client", clusterCA, clientReq("kube-apiserver-kubelet-client", "system:masters")},
		// The apiserver's identity towards aggregated API servers; they trust the front-proxy CA
		// and read the user from the request headers.
		{"front-proxy-client", frontProxyCA, clientReq("front-proxy-client")},
	}
	pairs := make(map[string]*pki.KeyPair, len(leaves))
	for _, l := range leaves {
		kp, err := w.leaf(l.name, l.ca, l.req)
		if err != nil {
			return err
		}
		pairs[l.name] = kp
	}

	if err := w.serviceAccountKey(); err != nil {
		return err
	}

	for _, kc := range []struct{ name, user, pair string }{
		{"admin.kubeconfig", "kubernetes-admin", "admin"},
		{"controller-manager.kubeconfig", "system:kube-controller-manager", "controller-manager"},
		{"scheduler.kubeconfig", "system:kube-scheduler", "scheduler"},
	} {
		data, err := kubeconfig(server, clusterCA, kc.user, pairs[kc.pair])
		if err != nil {
			return err
		}
		if err := w.writeIfChanged(kc.name, data, pki.KeyFileMode); err != nil {
			return err
		}
	}
	log.Printf("%s: %d file(s) written, the rest kept", w.dir, w.written)
	return nil
}

func clientReq(user string, groups ...string) pki.Request {
	return pki.Request{CommonName: user, Organization: groups, Usage: pki.UsageClient}
}

func (w *writer) path(name string) string { return filepath.Join(w.dir, name) }

// ca loads <base>.crt/.key or creates a new CA when they are missing, invalid or expiring.
func (w *writer) ca(base, commonName string) (*pki.CA, error) {
	certPath, keyPath := w.path(base+".crt"), w.path(base+".key")
	ca, err := pki.LoadCA(certPath, keyPath)
	if err == nil {
		switch {
		case ca.Cert.Subject.CommonName != commonName:
			err = fmt.Errorf("common name %q, want %q", ca.Cert.Subject.CommonName, commonName)
		case ca.Cert.NotAfter.Before(w.validUntil):
			err = fmt.Errorf("expires %v", ca.Cert.NotAfter)
		default:
			return ca, nil
		}
	}
	w.regenerating(base, err)
	ca, err = pki.NewCA(pki.CAConfig{CommonName: commonName})
	if err != nil {
		return nil, err
	}
	if err := pki.WriteKeyPair(certPath, keyPath, &ca.KeyPair); err != nil {
		return nil, err
	}
	w.written += 2
	return ca, nil
}

// leaf loads <base>.crt/.key or issues a new certificate from ca.
func (w *writer) leaf(base string, ca *pki.CA, req pki.Request) (*pki.KeyPair, error) {
	certPath, keyPath := w.path(base+".crt"), w.path(base+".key")
	kp, err := pki.LoadKeyPair(certPath, keyPath)
	if err == nil {
		err = ca.Verify(kp.Cert, req.Usage, w.validUntil)
	}
	if err == nil {
		err = req.Matches(kp.Cert)
	}
	if err == nil {
		return kp, nil
	}
	w.regenerating(base, err)
	kp, err = ca.Issue(req)
	if err != nil {
		return nil, err
	}
	if err := pki.WriteKeyPair(certPath, keyPath, kp); err != nil {
		return nil, err
	}
	w.written += 2
	return kp, nil
}

// serviceAccountKey keeps sa.key/sa.pub when they hold a matching RSA pair. RSA because service
// account tokens are RS256 JWTs, which every token consumer understands.
func (w *writer) serviceAccountKey() error {
	keyPath, pubPath := w.path("sa.key"), w.path("sa.pub")
	err := checkSAKey(keyPath, pubPath)
	if err == nil {
		return nil
	}
	w.regenerating("sa", err)
	key, err := pki.GenerateKey(pki.RSA2048)
	if err != nil {
		return err
	}
	pub, err := pki.EncodePublicKeyPEM(key.Public())
	if err != nil {
		return err
	}
	if err := pki.WriteKeyFile(keyPath, key); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(pubPath, pub, pki.CertFileMode); err != nil {
		return err
	}
	w.written += 2
	return nil
}

func checkSAKey(keyPath, pubPath string) error {
	keyPEM, err := pki.ReadPEMFile(keyPath)
	if err != nil {
		return err
	}
	pubPEM, err := pki.ReadPEMFile(pubPath)
	if err != nil {
		return err
	}
	key, err := pki.ParseKeyPEM(keyPEM)
	if err != nil {
		return err
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return fmt.Errorf("%s is not an RSA key", keyPath)
	}
	pub, err := pki.ParsePublicKeyPEM(pubPEM)
	if err != nil {
		return err
	}
	if !rsaKey.PublicKey.Equal(pub) {
		return fmt.Errorf("%s does not match %s", pubPath, keyPath)
	}
	return nil
}

// regenerating says why a file is about to be replaced; a missing file is the quiet normal case.
func (w *writer) regenerating(base string, why error) {
	if errors.Is(why, fs.ErrNotExist) {
		log.Printf("creating %s", base)
		return
	}
	log.Printf("regenerating %s: %v", base, why)
}

// writeIfChanged rewrites name only when its content differs, so repeated runs leave files (and
// their mtimes) alone.
func (w *writer) writeIfChanged(name string, data []byte, perm os.FileMode) error {
	path := w.path(name)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := pki.WriteFileAtomic(path, data, perm); err != nil {
		return err
	}
	w.written++
	return nil
}

// kubeconfig renders a kubeconfig with every credential embedded, so it can be copied anywhere.
func kubeconfig(server string, ca *pki.CA, user string, kp *pki.KeyPair) ([]byte, error) {
	keyPEM, err := pki.EncodeKeyPEM(kp.Key)
	if err != nil {
		return nil, err
	}
	b64 := base64.StdEncoding.EncodeToString
	// Every value is either a fixed name, a URL from the command line (quoted) or base64, so
	// plain formatting yields valid YAML.
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: skerry-local
  cluster:
    server: %q
    certificate-authority-data: %s
users:
- name: %q
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: skerry-local
  context:
    cluster: skerry-local
    user: %q
current-context: skerry-local
`, server, b64(pki.EncodeCertPEM(ca.Cert)), user, b64(pki.EncodeCertPEM(kp.Cert)), b64(keyPEM), user), nil
}
