package edgejoin

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skerry-io/skerry/edge/config"
)

func TestRuntimeCheck(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	o.setDefaults()
	if r := runtimeCheck(context.Background(), &o, "unix:///x.sock"); r.Err != nil || r.Detail != "containerd v1.6.20 at unix:///x.sock" {
		t.Fatalf("%+v", r)
	}
	e.rt.versionErr = errors.New("connection refused")
	if r := runtimeCheck(context.Background(), &o, "unix:///x.sock"); r.Err == nil || !strings.Contains(r.Err.Error(), "unix:///x.sock does not answer the CRI Version call") || r.Hint == "" {
		t.Fatalf("%+v", r)
	}
}

// A unix socket that is not a CRI server (it closes every connection) fails the real client.
func TestRuntimeCheckNotCRI(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "not-cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // ends when l closes
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	o := Options{}
	o.setDefaults()
	r := runtimeCheck(context.Background(), &o, "unix://"+sock)
	if r.Err == nil || !strings.Contains(r.Err.Error(), "does not answer the CRI Version call") {
		t.Fatalf("%+v", r)
	}
}

func TestPortsCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := config.Default()
	cfg.MetaServer.Address = l.Addr().String()
	cfg.Edged.Server.Address = "127.0.0.1:0"
	cfg.EventBus.Internal.Address = "127.0.0.1:0"
	r := portsCheck(cfg, false)
	if r.Err == nil || !strings.Contains(r.Err.Error(), l.Addr().String()+" (metaServer.address)") || !strings.Contains(r.Hint, "--set metaServer.address=") {
		t.Fatalf("%+v", r)
	}
	// Held by our own edgecore: fine.
	if r := portsCheck(cfg, true); r.Err != nil || !strings.Contains(r.Detail, "held by the running edgecore") {
		t.Fatalf("%+v", r)
	}
	cfg.MetaServer.Enable = false
	if r := portsCheck(cfg, false); r.Err != nil {
		t.Fatalf("disabled metaServer checked: %+v", r)
	}
}

func TestCgroupsCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "mi")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if r := cgroupsCheck(write(v1MountInfo)); r.Err != nil || !strings.Contains(r.Detail, "/sys/fs/cgroup/memory") {
		t.Fatalf("%+v", r)
	}
	for name, c := range map[string]struct{ mi, want string }{
		"v2 only":   {"30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n", "only the cgroup v2"},
		"no pids":   {strings.Replace(v1MountInfo, "rw,pids", "rw,freezer", 1), "not mounted: pids"},
		"read-only": {strings.Replace(v1MountInfo, "/sys/fs/cgroup/memory rw,", "/sys/fs/cgroup/memory ro,", 1), "read-only: memory at /sys/fs/cgroup/memory"},
		"garbage":   {"not mountinfo\n", "malformed"},
	} {
		r := cgroupsCheck(write(c.mi))
		if r.Err == nil || !strings.Contains(r.Err.Error(), c.want) {
			t.Errorf("%s: %+v, want %q", name, r, c.want)
		}
	}
	if r := cgroupsCheck(filepath.Join(dir, "missing")); r.Err == nil {
		t.Error("missing mountinfo passed")
	}
}

func TestDataDirCheck(t *testing.T) {
	dir := t.TempDir()
	if r := dataDirCheck(filepath.Join(dir, "a", "b")); r.Err != nil || !strings.Contains(r.Detail, "will be created") {
		t.Fatalf("%+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Fatal("the check created the directory")
	}
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := dataDirCheck(filepath.Join(file, "data")); r.Err == nil || !strings.Contains(r.Err.Error(), file+" is not a directory") {
		t.Fatalf("%+v", r)
	}
}

func TestNodeNameCheck(t *testing.T) {
	cfg := config.Default()
	cfg.NodeName, cfg.DataDir = "edge-2", t.TempDir()
	if r := nodeNameCheck(cfg); r.Err != nil {
		t.Fatalf("%+v", r)
	}
	if err := storeCert(cfg.DataDir, "edge-1"); err != nil {
		t.Fatal(err)
	}
	r := nodeNameCheck(cfg)
	if r.Err == nil || !strings.Contains(r.Err.Error(), `certificate of node "edge-1", not "edge-2"`) || !strings.Contains(r.Hint, "keadm reset edge") {
		t.Fatalf("%+v", r)
	}
}

func TestCloudCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // now nothing listens there
	cfg := config.Default()
	cfg.Hub.Server = addr
	o := Options{}
	o.setDefaults()
	r := cloudCheck(context.Background(), &o, cfg)
	if r.Err == nil || !strings.Contains(r.Err.Error(), "cannot reach "+addr) {
		t.Fatalf("%+v", r)
	}
}

func TestReportIgnores(t *testing.T) {
	var b strings.Builder
	p := &progress{w: &b, total: 1}
	p.begin("checking")
	res := []checkResult{{Name: "ports", Err: errors.New("busy")}, {Name: "cloud", Err: errors.New("down"), Hint: "start it"}, {Name: "runtime", Detail: "containerd"}}
	err := report(p, res, []string{"ports"})
	if err == nil || !strings.Contains(err.Error(), "host checks failed: cloud") || strings.Contains(err.Error(), "ports") {
		t.Fatalf("err %v", err)
	}
	out := b.String()
	for _, want := range []string{"ports      WARNING  busy (ignored)", "cloud      FAILED   down", "hint: start it", "runtime    ok       containerd"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if err := report(p, res, []string{"all"}); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add([]byte(v1MountInfo))
	f.Add([]byte("1 2 3:4 / /a\\040b rw - tmpfs t rw\n"))
	f.Add([]byte("1 2 3 4 5 6 -\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := parseMountInfo(b)
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.FSType == "" {
				t.Fatalf("empty fstype from %q", b)
			}
		}
	})
}
