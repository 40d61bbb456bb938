package nodestatus

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostStaticFacts(t *testing.T) {
	h := newHost(writeRoot(t, testFiles()))
	fakeNet(h, &fsStats{})
	st, err := h.static()
	if err != nil {
		t.Fatal(err)
	}
	want := staticFacts{
		CPUs:          4,
		MemoryTotal:   8000000 * 1024,
		PIDMax:        4194304,
		MachineID:     "0123456789abcdef0123456789abcdef",
		SystemUUID:    "4c4c4544-0042-3510-8052-b4c04f4e3232",
		BootID:        "8a3f5c1e-0b2d-4e6f-9a8b-7c6d5e4f3a2b",
		KernelVersion: "6.8.0-47-generic",
		OSImage:       "Ubuntu 24.04.1 LTS",
	}
	if st != want {
		t.Errorf("static facts\n got %+v\nwant %+v", st, want)
	}
}

func TestHostStaticFallbacks(t *testing.T) {
	files := testFiles()
	for _, p := range []string{"/sys/class/dmi/id/product_uuid", "/sys/devices/system/cpu/online",
		"/proc/sys/kernel/osrelease", "/etc/os-release", "/proc/sys/kernel/pid_max"} {
		delete(files, p)
	}
	files["/usr/lib/os-release"] = "NAME=Foo\n" // no PRETTY_NAME: the os-release(5) default
	h := newHost(writeRoot(t, files))
	fakeNet(h, &fsStats{})
	st, err := h.static()
	if err != nil {
		t.Fatal(err)
	}
	if st.SystemUUID != "" || st.CPUs != 1 || st.KernelVersion != "uname-release" || st.OSImage != "Linux" || st.PIDMax != 0 {
		t.Errorf("fallbacks: got %+v", st)
	}
}

func TestHostStaticNeedsMemory(t *testing.T) {
	files := testFiles()
	files["/proc/meminfo"] = "MemFree: 1 kB\n"
	h := newHost(writeRoot(t, files))
	if _, err := h.static(); err == nil || !strings.Contains(err.Error(), "MemTotal") {
		t.Errorf("got %v, want an error naming MemTotal", err)
	}
	delete(files, "/proc/meminfo")
	h = newHost(writeRoot(t, files))
	if _, err := h.static(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want a wrapped not-exist error", err)
	}
}

func TestHostReadFileLimit(t *testing.T) {
	files := testFiles()
	files["/etc/machine-id"] = strings.Repeat("a", maxSmallFile+1)
	h := newHost(writeRoot(t, files))
	if _, err := h.readString("/etc/machine-id"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("got %v, want a size error", err)
	}
	if st, err := h.static(); err != nil || st.MachineID != "" {
		t.Errorf("an oversized machine-id must be left empty: %q, %v", st.MachineID, err)
	}
}

func TestHostDynamicFacts(t *testing.T) {
	root := writeRoot(t, testFiles())
	h := newHost(root)
	fs := &fsStats{Total: 1000, Free: 400}
	fakeNet(h, fs)
	var statted string
	h.statfs = func(p string) (fsStats, error) { statted = p; return *fs, nil }

	d := h.dynamic("/data", "")
	if d.MemErr != nil || d.MemAvailable != 4000000*1024 {
		t.Errorf("memory: %d, %v", d.MemAvailable, d.MemErr)
	}
	if d.FSErr != nil || d.FS != *fs || statted != "/data" {
		t.Errorf("fs: %+v, %v (statted %q)", d.FS, d.FSErr, statted)
	}
	if d.ProcsErr != nil || d.Procs != 345 {
		t.Errorf("procs: %d, %v", d.Procs, d.ProcsErr)
	}
	if d.Hostname != "edge-1" {
		t.Errorf("hostname %q, want it lower-cased", d.Hostname)
	}
	if d.InternalIP != "192.168.1.10" {
		t.Errorf("internal IP %q, want eth0's IPv4 address (the default route's interface)", d.InternalIP)
	}

	if d := h.dynamic("/data", "10.9.8.7"); d.InternalIP != "10.9.8.7" {
		t.Errorf("override: got %q", d.InternalIP)
	}

	// No default route: the first global unicast address of any interface.
	writeFile(t, root, "/proc/net/route", "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n")
	if d := h.dynamic("/data", ""); d.InternalIP != "10.0.0.5" || d.IPErr != nil {
		t.Errorf("fallback: got %q, %v", d.InternalIP, d.IPErr)
	}
	// No route table and no usable address at all.
	if err := os.Remove(filepath.Join(root, "/proc/net/route")); err != nil {
		t.Fatal(err)
	}
	h.allAddrs = func() ([]net.Addr, error) { return []net.Addr{mustCIDR("127.0.0.1/8")}, nil }
	if d := h.dynamic("/data", ""); d.InternalIP != "" || d.IPErr == nil {
		t.Errorf("no address: got %q, %v", d.InternalIP, d.IPErr)
	}

	// Unreadable figures are errors, not zeros.
	h.statfs = func(string) (fsStats, error) { return fsStats{}, errors.New("boom") }
	writeFile(t, root, "/proc/meminfo", "nonsense")
	writeFile(t, root, "/proc/loadavg", "1 2 3")
	d = h.dynamic("/data", "")
	if d.MemErr == nil || d.FSErr == nil || d.ProcsErr == nil {
		t.Errorf("want errors, got %+v", d)
	}
}

func TestPickIP(t *testing.T) {
	v6 := pickIP([]net.Addr{mustCIDR("::1/128"), mustCIDR("fe80::1/64"), mustCIDR("2001:db8::1/64")})
	if v6.String() != "2001:db8::1" {
		t.Errorf("got %v, want the global IPv6 address when there is no IPv4 one", v6)
	}
	if ip := pickIP([]net.Addr{&net.IPAddr{IP: net.ParseIP("172.16.0.1")}}); ip.String() != "172.16.0.1" {
		t.Errorf("IPAddr: got %v", ip)
	}
	if ip := pickIP(nil); ip != nil {
		t.Errorf("got %v from nothing", ip)
	}
}

// TestHostRealMachine reads the machine the test runs on: the real paths must parse.
func TestHostRealMachine(t *testing.T) {
	h := newHost("")
	st, err := h.static()
	if err != nil {
		t.Fatal(err)
	}
	if st.CPUs < 1 || st.MemoryTotal <= 0 || st.KernelVersion == "" {
		t.Errorf("implausible facts %+v", st)
	}
	d := h.dynamic(t.TempDir(), "")
	if d.MemErr != nil || d.FSErr != nil || d.FS.Total == 0 {
		t.Errorf("dynamic facts %+v", d)
	}
}
