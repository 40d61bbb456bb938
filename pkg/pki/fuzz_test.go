package pki

import (
	"bytes"
	"crypto"
	"encoding/pem"
	"testing"
)

// seedPEM returns valid and near-valid inputs shared by the fuzz targets.
func seedPEM(f *testing.F) [][]byte {
	f.Helper()
	ca, err := NewCA(CAConfig{CommonName: "fuzz-ca"})
	if err != nil {
		f.Fatal(err)
	}
	leaf, err := ca.IssueServer("leaf", []string{"localhost"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	keyPEM, err := EncodeKeyPEM(leaf.Key)
	if err != nil {
		f.Fatal(err)
	}
	rsaKey, err := GenerateKey(RSA2048)
	if err != nil {
		f.Fatal(err)
	}
	rsaPEM, err := EncodeKeyPEM(rsaKey)
	if err != nil {
		f.Fatal(err)
	}
	pubPEM, err := EncodePublicKeyPEM(rsaKey.Public())
	if err != nil {
		f.Fatal(err)
	}
	certPEM := EncodeCertPEM(leaf.Cert)
	return [][]byte{
		nil,
		[]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
		[]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		certPEM,
		append(bytes.Clone(certPEM), EncodeCertPEM(ca.Cert)...),
		certPEM[:len(certPEM)-10],
		keyPEM,
		rsaPEM,
		pubPEM,
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{0x30, 0x00}}),
	}
}

func FuzzParseCertsPEM(f *testing.F) {
	for _, s := range seedPEM(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertsPEM(data)
		if err != nil {
			return
		}
		// Whatever parses must survive re-encoding unchanged.
		var again []byte
		for _, c := range certs {
			again = append(again, EncodeCertPEM(c)...)
		}
		back, err := ParseCertsPEM(again)
		if err != nil || len(back) != len(certs) {
			t.Fatalf("re-parse: %d certs, %v", len(back), err)
		}
		for i := range certs {
			if !back[i].Equal(certs[i]) {
				t.Fatalf("certificate %d changed in round trip", i)
			}
		}
	})
}

func FuzzParseKeyPEM(f *testing.F) {
	for _, s := range seedPEM(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParseKeyPEM(data)
		if err != nil {
			return
		}
		enc, err := EncodeKeyPEM(key)
		if err != nil {
			t.Fatalf("encode parsed key: %v", err)
		}
		back, err := ParseKeyPEM(enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !back.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
			t.Fatal("key changed in round trip")
		}
	})
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	for _, s := range seedPEM(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := ParsePublicKeyPEM(data)
		if err != nil {
			return
		}
		enc, err := EncodePublicKeyPEM(pub)
		if err != nil {
			t.Fatalf("encode parsed key: %v", err)
		}
		back, err := ParsePublicKeyPEM(enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !back.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Fatal("public key changed in round trip")
		}
	})
}
