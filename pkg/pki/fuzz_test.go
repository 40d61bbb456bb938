package pki

import (
	"crypto"
	"testing"
)

// The seeds (a CA and a leaf certificate, chains, truncated and empty blocks, PKCS#8, RSA and
// public keys) are files under testdata/fuzz: generating keys here would run in every fuzz
// worker as it starts, and RSA generation stalls the workers for seconds on a loaded machine.

func FuzzParseCertsPEM(f *testing.F) {
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
