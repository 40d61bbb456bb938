package bootstrap

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skerry-io/skerry/pkg/pki"
)

const (
	// MaxCSRSize bounds the request body: a CSR with an RSA-4096 key is under 2 KiB.
	MaxCSRSize = 16 << 10
	// NodeNameHeader carries the node name, as KubeEdge's edgecore sends it.
	NodeNameHeader = "NodeName"
	// CertContentType is the registered type of a DER certificate (RFC 2585). edgecore does not
	// look at it; browsers and curl users get something meaningful.
	CertContentType = "application/pkix-cert"

	// NodeGroup and NodeUserPrefix make the identity Kubernetes' Node authorizer expects.
	NodeGroup      = "system:nodes"
	NodeUserPrefix = "system:node:"

	minRSABits = 2048
)

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// Config configures a Server.
type Config struct {
	CA     *pki.CA
	Tokens TokenStore
	// CertValidity of issued node certificates; defaults to pki.DefaultCertValidity (one year,
	// KubeEdge's default), cut to the CA's expiry by pki.
	CertValidity time.Duration
	Logger       *slog.Logger
	// Now defaults to time.Now; tests move the clock.
	Now func() time.Time
}

// Server serves GET /ca.crt and GET|POST /edge.crt.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// NewServer checks cfg and returns the handler.
func NewServer(cfg Config) (*Server, error) {
	if cfg.CA == nil || cfg.Tokens == nil {
		return nil, errors.New("bootstrap: server needs a CA and a token store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /ca.crt", s.serveCA)
	s.mux.HandleFunc("GET /edge.crt", s.serveEdgeCert)
	s.mux.HandleFunc("POST /edge.crt", s.serveEdgeCert)
	return s, nil
}

// TLSConfig returns the server TLS configuration: client certificates are optional (joining
// nodes have none yet) but, when sent, must chain to our CA. The handler checks them again.
func (s *Server) TLSConfig(serving tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{serving},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    s.cfg.CA.Pool(),
		MinVersion:   tls.VersionTLS12,
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) serveCA(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", CertContentType)
	_, _ = w.Write(s.cfg.CA.Cert.Raw)
}

// httpError is a refusal with the status to answer and a message telling the operator what to do.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func fail(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serveEdgeCert(w http.ResponseWriter, r *http.Request) {
	nodeName := r.Header.Get(NodeNameHeader)
	logged := nodeName
	if len(logged) > validation.DNS1123SubdomainMaxLength {
		logged = logged[:validation.DNS1123SubdomainMaxLength] + "..." // the header is not checked yet
	}
	log := s.cfg.Logger.With("node", logged, "remote", r.RemoteAddr)
	cert, how, err := s.issue(r, nodeName, log)
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = fail(http.StatusInternalServerError, "internal error: %v", err)
		}
		log.Warn("node certificate refused", "status", he.status, "reason", he.msg)
		http.Error(w, he.msg, he.status)
		return
	}
	log.Info("node certificate issued", "via", how, "serial", cert.SerialNumber.Text(16), "notAfter", cert.NotAfter)
	w.Header().Set("Content-Type", CertContentType)
	_, _ = w.Write(cert.Raw)
}

// issue authenticates the caller (token, or current certificate for renewal), checks the CSR and
// signs it. how names the path taken, for the log.
func (s *Server) issue(r *http.Request, nodeName string, log *slog.Logger) (*x509.Certificate, string, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxCSRSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, "", fail(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes: send only the DER-encoded certificate request", MaxCSRSize)
		}
		return nil, "", fail(http.StatusBadRequest, "reading request body: %v", err)
	}

	auth := r.Header.Get("Authorization")
	if auth == "" {
		cert, err := s.renew(r, nodeName, body)
		return cert, "renewal", err
	}
	bearer, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return nil, "", fail(http.StatusUnauthorized, "Authorization header must be \"Bearer <token>\"")
	}
	if err := checkNodeName(nodeName); err != nil {
		return nil, "", err
	}
	rec, err := s.checkToken(r, strings.TrimSpace(bearer), nodeName)
	if err != nil {
		return nil, "", err
	}
	log = log.With("tokenID", rec.ID)
	pub, err := checkCSR(body, nodeName)
	if err != nil {
		return nil, "", err
	}
	cert, err := s.sign(pub, nodeName)
	if err != nil {
		return nil, "", err
	}
	// Consume only after everything else succeeded, so a bad CSR does not burn the token; the
	// certificate is handed out only if this caller won the consumption.
	if rec.SingleUse {
		if err := s.cfg.Tokens.Consume(r.Context(), rec); err != nil {
			if errors.Is(err, ErrTokenNotFound) {
				return nil, "", fail(http.StatusUnauthorized, "single-use token %s was already used: create a new one with `keadm gettoken`", rec.ID)
			}
			return nil, "", err
		}
		log.Info("single-use token consumed")
	}
	return cert, "token", nil
}

func checkNodeName(name string) error {
	if name == "" {
		return fail(http.StatusBadRequest, "missing %s header: set the node name (edgecore: modules.edged.hostnameOverride, keadm join --edgenode-name)", NodeNameHeader)
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fail(http.StatusBadRequest, "node name %q is not a valid DNS-1123 subdomain (%s): choose a lower-case name of letters, digits, '-' and '.'", name, strings.Join(errs, "; "))
	}
	return nil
}

func (s *Server) checkToken(r *http.Request, bearer, nodeName string) (*TokenRecord, error) {
	const newToken = "create a new one with `keadm gettoken`"
	// Accept the full printed token too (operators paste it); its CA pin must then be ours.
	if strings.Count(bearer, ".") == 2 {
		t, err := ParseToken(bearer)
		if err != nil {
			return nil, fail(http.StatusUnauthorized, "malformed token: %s", newToken)
		}
		if t.CAHash != CAHash(s.cfg.CA.Cert) {
			return nil, fail(http.StatusUnauthorized, "token was made for another cloudcore (CA hash differs): %s", newToken)
		}
		bearer = t.Bearer()
	}
	id, secret, err := ParseBearer(bearer)
	if err != nil {
		return nil, fail(http.StatusUnauthorized, "malformed token: %s", newToken)
	}
	rec, err := s.cfg.Tokens.Get(r.Context(), id)
	if errors.Is(err, ErrTokenNotFound) {
		return nil, fail(http.StatusUnauthorized, "token %s is unknown: it was revoked, already used (single-use) or never existed; %s", id, newToken)
	}
	if err != nil {
		return nil, err
	}
	// Same answer as unknown: a wrong secret must not confirm that an id exists.
	if !rec.SecretMatches(secret) {
		return nil, fail(http.StatusUnauthorized, "token %s is unknown: it was revoked, already used (single-use) or never existed; %s", id, newToken)
	}
	if now := s.cfg.Now(); !now.Before(rec.Expires) {
		return nil, fail(http.StatusUnauthorized, "token %s expired at %s: %s", id, rec.Expires.UTC().Format(time.RFC3339), newToken)
	}
	if rec.NodeName != "" && rec.NodeName != nodeName {
		return nil, fail(http.StatusForbidden, "token %s is bound to node %q, not %q: join with that node name or create a token for this node with `keadm gettoken`", id, rec.NodeName, nodeName)
	}
	return rec, nil
}

// renew authenticates by the client certificate presented over mTLS and re-issues the same
// identity for a new key.
func (s *Server) renew(r *http.Request, nodeName string, body []byte) (*x509.Certificate, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, fail(http.StatusUnauthorized, "no token and no client certificate: join with `keadm join --token <token>` (get one with `keadm gettoken`), or renew over TLS with the node's current certificate")
	}
	peer := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := peer.Verify(x509.VerifyOptions{
		Roots:         s.cfg.CA.Pool(),
		Intermediates: inter,
		CurrentTime:   s.cfg.Now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, fail(http.StatusUnauthorized, "client certificate not accepted (%v): if it expired, get a new token with `keadm gettoken` and join again", err)
	}
	certNode, ok := strings.CutPrefix(peer.Subject.CommonName, NodeUserPrefix)
	if !ok || !slices.Equal(peer.Subject.Organization, []string{NodeGroup}) || checkNodeName(certNode) != nil {
		return nil, fail(http.StatusForbidden, "client certificate %q is not a node identity: only nodes renew here", peer.Subject.CommonName)
	}
	if nodeName != "" && nodeName != certNode {
		return nil, fail(http.StatusForbidden, "node %q cannot renew the certificate of node %q", certNode, nodeName)
	}
	pub, err := checkCSR(body, certNode)
	if err != nil {
		return nil, err
	}
	return s.sign(pub, certNode)
}

func (s *Server) sign(pub any, nodeName string) (*x509.Certificate, error) {
	return s.cfg.CA.Sign(pub, pki.Request{
		CommonName:   NodeUserPrefix + nodeName,
		Organization: []string{NodeGroup},
		Usage:        pki.UsageClient,
		Validity:     s.cfg.CertValidity,
	})
}

// checkCSR accepts only a request for exactly the node identity, with no alternative names, a
// valid self-signature and a strong key. Anything else is refused rather than silently dropped,
// so a misbehaving client learns what is wrong.
func checkCSR(der []byte, nodeName string) (any, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "body is not a DER certificate request: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fail(http.StatusBadRequest, "certificate request signature invalid: %v", err)
	}
	wantCN := NodeUserPrefix + nodeName
	if csr.Subject.CommonName != wantCN || !slices.Equal(csr.Subject.Organization, []string{NodeGroup}) || len(csr.Subject.Names) != 2 {
		return nil, fail(http.StatusBadRequest, "certificate request subject is %q: it must be exactly CN=%s, O=%s", csr.Subject.String(), wantCN, NodeGroup)
	}
	for _, ext := range csr.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			return nil, fail(http.StatusBadRequest, "certificate request asks for subject alternative names: node client certificates carry none, remove them")
		}
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fail(http.StatusBadRequest, "ECDSA curve %s not accepted: use P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fail(http.StatusBadRequest, "RSA key of %d bits is too weak: use at least %d bits or ECDSA P-256", k.N.BitLen(), minRSABits)
		}
	default:
		return nil, fail(http.StatusBadRequest, "key type %T not accepted: use ECDSA P-256/P-384 or RSA >= %d bits", csr.PublicKey, minRSABits)
	}
	return csr.PublicKey, nil
}
