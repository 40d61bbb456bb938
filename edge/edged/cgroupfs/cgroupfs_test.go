package cgroupfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRmdirKeepsWhatIsNotEmpty(t *testing.T) {
	d := t.TempDir()
	p := filepath.Join(d, "pod1")
	if err := os.MkdirAll(filepath.Join(p, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "cpu.shares"), []byte("2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Rmdir(p); err == nil {
		t.Fatal("removed a cgroup with a child cgroup in it")
	}
	if err := Rmdir(filepath.Join(p, "child")); err != nil {
		t.Fatal(err)
	}
	if err := Rmdir(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("still there: %v", err)
	}
}
