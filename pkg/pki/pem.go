package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// MaxPEMSize bounds every PEM input: a certificate bundle or key is a few kilobytes, and the
// parsers may see data from the network.
const MaxPEMSize = 1 << 20

// PEM block types.
const (
	certificateBlock   = "CERTIFICATE"
	privateKeyBlock    = "PRIVATE KEY" // PKCS #8
	ecPrivateKeyBlock  = "EC PRIVATE KEY"
	rsaPrivateKeyBlock = "RSA PRIVATE KEY"
	publicKeyBlock     = "PUBLIC KEY" // PKIX
)

// ErrNoPEM is returned when the input holds no PEM block of the expected type.
var ErrNoPEM = errors.New("pki: no PEM data")

// EncodeCertPEM returns cert as a CERTIFICATE block.
func EncodeCertPEM(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: certificateBlock, Bytes: cert.Raw})
}

// EncodeKeyPEM returns key as a PKCS #8 PRIVATE KEY block, which every Kubernetes component and
// crypto/tls read whatever the algorithm.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: privateKeyBlock, Bytes: der}), nil
}

// EncodePublicKeyPEM returns pub as a PKIX PUBLIC KEY block.
func EncodePublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: publicKeyBlock, Bytes: der}), nil
}

// ParseCertsPEM parses one or more CERTIFICATE blocks. Anything else in the input (other block
// types, text between or after blocks) is an error: a bundle that is not purely certificates was
// not written by us and should not be trusted silently.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	blocks, err := decodeBlocks(data)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != certificateBlock {
			return nil, fmt.Errorf("pki: block %d is %q, want %s", i, b.Type, certificateBlock)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: block %d: %w", i, err)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// ParseCertPEM parses exactly one CERTIFICATE block.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("pki: %d certificates, want 1", len(certs))
	}
	return certs[0], nil
}

// ParseKeyPEM parses exactly one private key block: PKCS #8, SEC 1 (EC) or PKCS #1 (RSA).
// Only ECDSA and RSA keys are accepted.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	b, err := decodeOne(data)
	if err != nil {
		return nil, err
	}
	var key any
	switch b.Type {
	case privateKeyBlock:
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case ecPrivateKeyBlock:
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case rsaPrivateKeyBlock:
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("pki: block is %q, want a private key", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: parse %s: %w", b.Type, err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("pki: unsupported private key type %T", key)
	}
}

// ParsePublicKeyPEM parses exactly one PKIX PUBLIC KEY block holding an ECDSA or RSA key.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	b, err := decodeOne(data)
	if err != nil {
		return nil, err
	}
	if b.Type != publicKeyBlock {
		return nil, fmt.Errorf("pki: block is %q, want %s", b.Type, publicKeyBlock)
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: parse %s: %w", b.Type, err)
	}
	switch pub.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey:
		return pub, nil
	default:
		return nil, fmt.Errorf("pki: unsupported public key type %T", pub)
	}
}

// decodeBlocks splits data into PEM blocks, allowing only white space around them.
func decodeBlocks(data []byte) ([]*pem.Block, error) {
	if len(data) > MaxPEMSize {
		return nil, fmt.Errorf("pki: PEM input of %d bytes exceeds %d", len(data), MaxPEMSize)
	}
	var blocks []*pem.Block
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		// pem.Decode skips any text before a block; we do not, so nothing hides between blocks.
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, fmt.Errorf("pki: data outside PEM blocks at block %d", len(blocks))
		}
		b, next := pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("pki: malformed PEM block %d", len(blocks))
		}
		if len(b.Headers) != 0 {
			// Encrypted (Proc-Type) keys and other legacy headers are not ours.
			return nil, fmt.Errorf("pki: PEM block %q has headers", b.Type)
		}
		blocks = append(blocks, b)
		rest = bytes.TrimSpace(next)
	}
	if len(blocks) == 0 {
		return nil, ErrNoPEM
	}
	return blocks, nil
}

func decodeOne(data []byte) (*pem.Block, error) {
	blocks, err := decodeBlocks(data)
	if err != nil {
		return nil, err
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("pki: %d PEM blocks, want 1", len(blocks))
	}
	return blocks[0], nil
}
