package pki

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File modes: private keys are readable by their owner only; certificates are public.
const (
	KeyFileMode  os.FileMode = 0o600
	CertFileMode os.FileMode = 0o644
)

// WriteFileAtomic writes data to path so that readers see either the old file or the complete
// new one, never a partial write: it writes a temporary file in the same directory with the final
// mode, syncs it and renames it over path.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// CreateTemp makes the file 0600; set the final mode before any data is in it.
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	// Persist the rename itself; failure here does not undo it, so it is not an error.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// WriteCertFile writes cert as PEM, mode 0644.
func WriteCertFile(path string, cert *x509.Certificate) error {
	return WriteFileAtomic(path, EncodeCertPEM(cert), CertFileMode)
}

// WriteKeyFile writes key as PKCS #8 PEM, mode 0600.
func WriteKeyFile(path string, key crypto.Signer) error {
	data, err := EncodeKeyPEM(key)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data, KeyFileMode)
}

// WriteKeyPair writes the key first, then the certificate, so that a crash in between leaves a
// certificate that does not match its key (caught by LoadKeyPair) rather than the reverse
// situation being mistaken for a complete pair.
func WriteKeyPair(certPath, keyPath string, kp *KeyPair) error {
	if err := WriteKeyFile(keyPath, kp.Key); err != nil {
		return err
	}
	return WriteCertFile(certPath, kp.Cert)
}

// LoadKeyPair reads a certificate and its key and checks that they belong together.
func LoadKeyPair(certPath, keyPath string) (*KeyPair, error) {
	certPEM, err := ReadPEMFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := ReadPEMFile(keyPath)
	if err != nil {
		return nil, err
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	kp := &KeyPair{Cert: cert, Key: key}
	if err := kp.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	return kp, nil
}

// LoadCA reads a CA certificate and key written by WriteKeyPair.
func LoadCA(certPath, keyPath string) (*CA, error) {
	kp, err := LoadKeyPair(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	return AsCA(kp)
}

// ReadPEMFile reads a file that holds PEM data, refusing files larger than MaxPEMSize. A missing
// file is reported as an error wrapping fs.ErrNotExist.
func ReadPEMFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPEMSize+1))
	if err != nil {
		return nil, fmt.Errorf("pki: read %s: %w", path, err)
	}
	if len(data) > MaxPEMSize {
		return nil, fmt.Errorf("pki: %s is larger than %d bytes", path, MaxPEMSize)
	}
	return data, nil
}
