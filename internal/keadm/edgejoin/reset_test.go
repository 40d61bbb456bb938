package edgejoin

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skerry-io/skerry/internal/keadm/statefile"
)

func TestResetRemovesOnlyWhatJoinCreated(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	// The data dir exists before join, with a file of the operator's; so does a sibling of
	// the config file.
	data := e.path("data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(data, "operator-notes")
	sibling := filepath.Join(o.ConfigDir, "cloudcore.yaml")
	if err := os.MkdirAll(o.ConfigDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{mine, sibling} {
		if err := os.WriteFile(p, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	// What edgecore would have made: its store, a DMI socket, pod cgroups of this node and
	// of another pod that is not this node's.
	if err := os.WriteFile(filepath.Join(data, "edgecore.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", e.path("dmi.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	ours := filepath.Join(o.CgroupFS, "memory", "kubepods", "poduid-1", "ctr")
	theirs := filepath.Join(o.CgroupFS, "memory", "kubepods", "poduid-2")
	for _, d := range []string{ours, theirs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.rt.uids = []string{"uid-1"}

	e.out.Reset()
	if err := Reset(context.Background(), o); err != nil {
		t.Fatalf("%v\n%s", err, e.errw.String())
	}
	if len(e.svc.removes) != 1 || e.svc.removes[0].Name != "edgecore" {
		t.Fatalf("service removes %+v", e.svc.removes)
	}
	if len(e.rt.removed) != 1 || e.rt.removed[0] != "edge-1" {
		t.Fatalf("pods removed for %q", e.rt.removed)
	}
	for _, gone := range []string{filepath.Join(o.ConfigDir, ConfigFile), e.path("dmi.sock"), filepath.Join(data, "certs"),
		filepath.Join(data, "edgecore.db"), filepath.Dir(ours), recordPath(o.StateDir), o.StateDir} {
		if _, err := os.Lstat(gone); !os.IsNotExist(err) {
			t.Errorf("%s left (%v)", gone, err)
		}
	}
	for _, kept := range []string{mine, sibling, theirs} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("%s removed: %v", kept, err)
		}
	}
	if !strings.Contains(e.out.String(), "kubectl delete node edge-1") {
		t.Errorf("summary:\n%s", e.out.String())
	}
	// Twice: nothing left to do, and that is fine.
	e.out.Reset()
	if err := Reset(context.Background(), o); err != nil || !strings.Contains(e.out.String(), "nothing to reset") {
		t.Fatalf("second reset: %v %q", err, e.out.String())
	}
}

func TestResetRemovesCreatedDirs(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if err := Reset(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{e.path("data"), o.ConfigDir, o.StateDir} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s left (%v)", gone, err)
		}
	}
	if _, err := os.Stat(filepath.Dir(o.ConfigDir)); err != nil {
		t.Errorf("the config dir's parent went too: %v", err)
	}
}

func TestResetKeepsRecordWhenPodsFail(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.Runtime = func(string) (Runtime, error) { return nil, os.ErrNotExist }
	err := Reset(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "run it again") || !strings.Contains(err.Error(), "--remote-runtime-endpoint") {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(recordPath(o.StateDir)); err != nil {
		t.Fatalf("record removed after a failed reset: %v", err)
	}
	o.Runtime = func(string) (Runtime, error) { return e.rt, nil }
	if err := Reset(context.Background(), o); err != nil {
		t.Fatalf("retry: %v", err)
	}
}

func TestParseRecordRejectsDangerousPaths(t *testing.T) {
	for _, js := range []string{
		`{"nodeName":"n","configPath":"/etc/e.yaml","dataDir":"/"}`,
		`{"nodeName":"n","configPath":"e.yaml","dataDir":"/var/lib/x"}`,
		`{"nodeName":"n","configPath":"/etc/e.yaml","dataDir":"/var/lib/../x"}`,
		`{"nodeName":"n","configPath":"/etc/e.yaml","dataDir":"/var/lib/x","dataDirBefore":["../etc"]}`,
		`{"nodeName":"n","configPath":"/etc/e.yaml","dataDir":"/var/lib/x","surprise":1}`,
		`{"configPath":"/etc/e.yaml","dataDir":"/var/lib/x"}`,
	} {
		if _, err := parseRecord([]byte(js)); err == nil {
			t.Errorf("parseRecord(%s) accepted", js)
		}
	}
	if _, err := parseRecord([]byte(`{"nodeName":"n","configPath":"/etc/e.yaml","dataDir":"/var/lib/x","service":{"Name":"edgecore","Binary":"/b","Args":null,"StateDir":"/s"}}`)); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"nodeName":"n","configPath":"/etc/e.yaml","dataDir":"/var/lib/x","dataDirBefore":["a"]}`))
	f.Add([]byte(`{"dataDir":"/"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			return
		}
		if !statefile.SafePath(r.DataDir) || !statefile.SafePath(r.ConfigPath) {
			t.Fatalf("accepted unsafe paths %q %q", r.DataDir, r.ConfigPath)
		}
	})
}
