package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/skerry-io/skerry/pkg/pki"
)

// ALPN protocol ids. QUIC requires ALPN; a distinct id keeps a KubeEdge (pre-RFC) QUIC peer or
// an HTTP/3 client from being mistaken for a hub peer. WebSocket upgrades plain HTTP/1.1.
const (
	ALPNQUIC      = "skerry-hub"
	alpnWebSocket = "http/1.1"
)

// Certificate turns a pki key pair into a tls.Certificate.
func Certificate(kp *pki.KeyPair) (tls.Certificate, error) {
	if err := kp.Validate(); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{kp.Cert.Raw}, PrivateKey: kp.Key, Leaf: kp.Cert}, nil
}

// ServerTLSConfig is the cloud side of mutual TLS: every client must present a certificate
// that chains to clientCAs (Go also checks the client-auth key usage). TLS 1.2 is the floor;
// Go negotiates 1.3 whenever the peer supports it.
func ServerTLSConfig(cert tls.Certificate, clientCAs *x509.CertPool) (*tls.Config, error) {
	if clientCAs == nil {
		return nil, errors.New("transport: server TLS needs a client CA pool")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCAs,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ClientTLSConfig is the edge side: it presents cert and verifies the server's certificate,
// including its name (serverName, or the host of the dialled address when empty), against
// rootCAs.
func ClientTLSConfig(cert tls.Certificate, rootCAs *x509.CertPool, serverName string) (*tls.Config, error) {
	if rootCAs == nil {
		return nil, errors.New("transport: client TLS needs a root CA pool")
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      rootCAs,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// withALPN returns a copy of cfg speaking only proto, so one base configuration can serve
// both transports without them sharing (and mutating) a tls.Config.
func withALPN(cfg *tls.Config, proto string) *tls.Config {
	c := cfg.Clone()
	c.NextProtos = []string{proto}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}
