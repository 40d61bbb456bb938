package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skerry-io/skerry/pkg/configfile"
)

func TestDefaultIsValidAndRoundTrips(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	b, err := configfile.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	got := &CloudCore{}
	if err := configfile.Decode(b, Meta, got); err != nil {
		t.Fatalf("printed default config does not load: %v\n%s", err, b)
	}
	if *got != *d {
		t.Fatalf("round trip: got %+v, want %+v", got, d)
	}
}

func TestValidateNamesEachBadKey(t *testing.T) {
	dir := t.TempDir()
	c := Default()
	c.KubeAPI.Kubeconfig = dir
	c.KubeAPI.QPS = 0
	c.KubeAPI.Burst = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, key := range []string{"kubeAPI.kubeconfig", "kubeAPI.qps", "kubeAPI.burst"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
	c = Default()
	c.KubeAPI.Kubeconfig = filepath.Join(dir, "missing")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing kubeconfig: %v", err)
	}
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.KubeAPI.Kubeconfig = kc
	if err := c.Validate(); err != nil {
		t.Fatalf("existing kubeconfig: %v", err)
	}
}
