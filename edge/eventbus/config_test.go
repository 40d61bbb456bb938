package eventbus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDefaultIsValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != ModeInternal || cfg.Internal.Address != "127.0.0.1:1884" || cfg.External.URL != "tcp://127.0.0.1:1883" {
		t.Errorf("defaults are not KubeEdge's: %+v", cfg)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	ext := func(mod func(c *Config)) Config {
		c := Default()
		c.Mode = ModeExternal
		mod(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" means valid
	}{
		{"both ok", ext(func(c *Config) { c.Mode = ModeBoth }), ""},
		{"tls ok", ext(func(c *Config) {
			c.External.URL = "ssl://broker:8883"
			c.External.TLS = TLSConfig{CAFile: file, CertFile: file, KeyFile: file, ServerName: "b"}
		}), ""},
		{"password ok", ext(func(c *Config) { c.External.Username = "u"; c.External.PasswordFile = file }), ""},
		{"empty mode", ext(func(c *Config) { c.Mode = "" }), "mode: empty"},
		{"unknown mode", ext(func(c *Config) { c.Mode = "bridge" }), `mode "bridge"`},
		{"payload zero", ext(func(c *Config) { c.MaxPayloadBytes = 0 }), "maxPayloadBytes 0"},
		{"payload huge", ext(func(c *Config) { c.MaxPayloadBytes = MaxMaxPayloadBytes + 1 }), "maxPayloadBytes"},
		{"qos 3", ext(func(c *Config) { c.QoS = 3 }), "qos 3"},
		{"bad internal address", Config{Mode: ModeInternal, Internal: InternalConfig{Address: "1884"}, MaxPayloadBytes: 1}, "internal.address"},
		{"bad internal host", Config{Mode: ModeInternal, Internal: InternalConfig{Address: "example.com:1884"}, MaxPayloadBytes: 1}, "want an IP address"},
		{"bad internal port", Config{Mode: ModeInternal, Internal: InternalConfig{Address: "127.0.0.1:70000"}, MaxPayloadBytes: 1}, "port"},
		{"external unchecked in internal mode", func() Config { c := Default(); c.External.URL = "ftp://x"; return c }(), ""},
		{"bad scheme", ext(func(c *Config) { c.External.URL = "http://127.0.0.1:1883" }), `scheme "http"`},
		{"no port", ext(func(c *Config) { c.External.URL = "tcp://127.0.0.1" }), "port"},
		{"credentials in url", ext(func(c *Config) { c.External.URL = "tcp://u:p@127.0.0.1:1883" }), "only scheme://host:port"},
		{"empty url", ext(func(c *Config) { c.External.URL = "" }), "external.url: empty"},
		{"password without user", ext(func(c *Config) { c.External.PasswordFile = file }), "without external.username"},
		{"missing password file", ext(func(c *Config) { c.External.Username = "u"; c.External.PasswordFile = missing }), "external.passwordFile"},
		{"password file is a dir", ext(func(c *Config) { c.External.Username = "u"; c.External.PasswordFile = dir }), "not a regular file"},
		{"tls on tcp", ext(func(c *Config) { c.External.TLS.CAFile = file }), "not a TLS URL"},
		{"cert without key", ext(func(c *Config) { c.External.URL = "mqtts://b:8883"; c.External.TLS.CertFile = file }), "certFile and keyFile"},
		{"missing ca", ext(func(c *Config) { c.External.URL = "tls://b:8883"; c.External.TLS.CAFile = missing }), "external.tls.caFile"},
		{"zero timeout", ext(func(c *Config) { c.External.ConnectTimeout = metav1.Duration{} }), "connectTimeout"},
		{"both on one address", ext(func(c *Config) {
			c.Mode = ModeBoth
			c.External.URL = "tcp://localhost:1884"
		}), "same address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestNewRefusesInvalidConfigAndBadFiles(t *testing.T) {
	if _, err := New(Config{}, nil); err == nil || !strings.Contains(err.Error(), "invalid configuration") {
		t.Fatalf("New(zero config): %v", err)
	}
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.Mode = ModeExternal
	cfg.External.URL = "ssl://127.0.0.1:8883"
	cfg.External.TLS.CAFile = notPEM
	cfg.External.ConnectTimeout = metav1.Duration{Duration: time.Second}
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("New with a bad CA file: %v", err)
	}
}
