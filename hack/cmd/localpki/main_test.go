package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skerry-io/skerry/pkg/pki"
)

func runOnce(t *testing.T, dir string) int {
	t.Helper()
	w := &writer{dir: dir, validUntil: time.Now().Add(24 * time.Hour)}
	if err := w.run("https://127.0.0.1:6443", net.ParseIP("10.96.0.1")); err != nil {
		t.Fatalf("run: %v", err)
	}
	return w.written
}

func TestSecondRunKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	if n := runOnce(t, dir); n != 23 {
		t.Fatalf("first run wrote %d files, want 23", n)
	}
	if n := runOnce(t, dir); n != 0 {
		t.Fatalf("second run wrote %d files, want 0", n)
	}
}

func TestBrokenLeafIsReplacedAlone(t *testing.T) {
	dir := t.TempDir()
	runOnce(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "scheduler.crt"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The scheduler's pair and its kubeconfig.
	if n := runOnce(t, dir); n != 3 {
		t.Fatalf("wrote %d files, want 3", n)
	}
}

func TestNewCAReissuesItsLeaves(t *testing.T) {
	dir := t.TempDir()
	runOnce(t, dir)
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	runOnce(t, dir)
	ca, err := pki.LoadCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	for name, usage := range map[string]pki.Usage{
		"apiserver": pki.UsageServer, "admin": pki.UsageClient, "controller-manager": pki.UsageClient,
		"scheduler": pki.UsageClient, "apiserver-kubelet-client": pki.UsageClient,
	} {
		kp, err := pki.LoadKeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := ca.Verify(kp.Cert, usage, time.Now()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	kubeconfig, err := os.ReadFile(filepath.Join(dir, "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kubeconfig), `server: "https://127.0.0.1:6443"`) {
		t.Errorf("admin.kubeconfig lacks the server:\n%s", kubeconfig)
	}
}
