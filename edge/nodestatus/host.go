package nodestatus

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// Size limits of the files read: each is a few hundred bytes on a real host; the limits only
// stop a broken or hostile file from being read whole into memory.
const (
	maxSmallFile   = 4 << 10   // ids, single numbers, version strings
	maxMeminfo     = 64 << 10  // ~1.5 KiB in practice
	maxRouteTable  = 256 << 10 // ~128 bytes per route
	maxOSRelease   = 64 << 10
	maxCPUListFile = 4 << 10
)

// host reads facts about the machine. Paths are resolved under root so tests can point it
// at a fake tree; the functions that need syscalls or the network stack are fields for the
// same reason.
type host struct {
	root string

	hostname   func() (string, error)
	statfs     func(path string) (fsStats, error)
	uname      func() (release string, err error)
	ifaceAddrs func(name string) ([]net.Addr, error)
	allAddrs   func() ([]net.Addr, error)
	numCPU     func() int
}

// fsStats is a file system's size and the space left to unprivileged users, in bytes.
type fsStats struct {
	Total, Free uint64
}

func newHost(root string) *host {
	if root == "" {
		root = "/"
	}
	return &host{
		root:     root,
		hostname: os.Hostname,
		statfs:   statfs,
		uname:    unameRelease,
		ifaceAddrs: func(name string) ([]net.Addr, error) {
			ifc, err := net.InterfaceByName(name)
			if err != nil {
				return nil, err
			}
			return ifc.Addrs()
		},
		allAddrs: net.InterfaceAddrs,
		numCPU:   runtime.NumCPU,
	}
}

func (h *host) path(p string) string { return filepath.Join(h.root, p) }

// readFile reads the file at p (under root) if it is at most limit bytes.
func (h *host) readFile(p string, limit int64) ([]byte, error) {
	f, err := os.Open(h.path(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, limit)
	}
	return b, nil
}

// readString reads a one-line file and trims it.
func (h *host) readString(p string) (string, error) {
	b, err := h.readFile(p, maxSmallFile)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// staticFacts change only with a reboot or a hardware change; they are read once at start.
type staticFacts struct {
	CPUs          int
	MemoryTotal   int64 // bytes
	PIDMax        int64 // 0 when unknown
	MachineID     string
	SystemUUID    string
	BootID        string
	KernelVersion string
	OSImage       string
}

// static reads the static facts. Only the figures the node's capacity cannot do without
// (CPUs and memory) are errors; missing ids are left empty, as the kubelet does.
func (h *host) static() (staticFacts, error) {
	var s staticFacts
	s.CPUs = h.cpus()
	b, err := h.readFile("/proc/meminfo", maxMeminfo)
	if err != nil {
		return s, fmt.Errorf("memory capacity: %w", err)
	}
	mi, err := parseMeminfo(b)
	if err != nil {
		return s, fmt.Errorf("memory capacity: %w", err)
	}
	s.MemoryTotal = mi.Total
	if v, err := h.readString("/proc/sys/kernel/pid_max"); err == nil {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			s.PIDMax = n
		}
	}
	s.MachineID, _ = h.readString("/etc/machine-id")
	// Readable by root only on most systems; edgecore runs as root, tests and dev runs not.
	s.SystemUUID, _ = h.readString("/sys/class/dmi/id/product_uuid")
	s.BootID, _ = h.readString("/proc/sys/kernel/random/boot_id")
	s.KernelVersion = h.kernelVersion()
	s.OSImage = h.osImage()
	return s, nil
}

// cpus counts the online CPUs of the machine. runtime.NumCPU is only the fallback: it counts
// the CPUs this process may use, which is fewer when edgecore runs in a restricted cpuset.
func (h *host) cpus() int {
	if v, err := h.readFile("/sys/devices/system/cpu/online", maxCPUListFile); err == nil {
		if n, err := parseCPUList(string(v)); err == nil && n > 0 {
			return n
		}
	}
	return h.numCPU()
}

// kernelVersion is `uname -r`: the kernel publishes the same string in
// /proc/sys/kernel/osrelease, which can be faked in tests; uname is the fallback.
func (h *host) kernelVersion() string {
	if v, err := h.readString("/proc/sys/kernel/osrelease"); err == nil && v != "" {
		return v
	}
	v, _ := h.uname()
	return v
}

// osImage is PRETTY_NAME from os-release(5), which looks in /etc first, then /usr/lib.
func (h *host) osImage() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := h.readFile(p, maxOSRelease)
		if err != nil {
			continue
		}
		if v := parseOSRelease(b); v != "" {
			return v
		}
		return "Linux" // the os-release(5) default for PRETTY_NAME
	}
	return ""
}

// dynamicFacts are re-read for every status computation. A figure that cannot be read is
// reported through its error, so its condition can say Unknown rather than guess.
type dynamicFacts struct {
	MemAvailable int64
	MemErr       error
	FS           fsStats
	FSErr        error
	Procs        int64
	ProcsErr     error
	Hostname     string
	InternalIP   string
	IPErr        error
}

func (h *host) dynamic(dataDir, ipOverride string) dynamicFacts {
	var d dynamicFacts
	if b, err := h.readFile("/proc/meminfo", maxMeminfo); err != nil {
		d.MemErr = err
	} else if mi, err := parseMeminfo(b); err != nil {
		d.MemErr = err
	} else {
		d.MemAvailable = mi.Available
	}
	d.FS, d.FSErr = h.statfs(dataDir)
	if d.FSErr == nil && d.FS.Total == 0 {
		d.FSErr = fmt.Errorf("statfs %s: file system reports size 0", dataDir)
	}
	if v, err := h.readString("/proc/loadavg"); err != nil {
		d.ProcsErr = err
	} else {
		d.Procs, d.ProcsErr = parseLoadavgProcs(v)
	}
	if hn, err := h.hostname(); err == nil {
		d.Hostname = strings.ToLower(strings.TrimSpace(hn))
	}
	if ipOverride != "" {
		d.InternalIP = ipOverride
	} else {
		d.InternalIP, d.IPErr = h.internalIP()
	}
	return d
}

// internalIP picks the address other machines most likely reach this node on: the address
// of the interface that holds the default route, else the first non-loopback global unicast
// address of any interface. IPv4 is preferred in both cases, as the kubelet does.
func (h *host) internalIP() (string, error) {
	var routeErr error
	b, err := h.readFile("/proc/net/route", maxRouteTable)
	if err != nil {
		routeErr = err
	} else if ifc := defaultRouteIface(parseRoutes(b)); ifc == "" {
		routeErr = errors.New("no IPv4 default route")
	} else if addrs, err := h.ifaceAddrs(ifc); err != nil {
		routeErr = fmt.Errorf("default route interface %s: %w", ifc, err)
	} else if ip := pickIP(addrs); ip != nil {
		return ip.String(), nil
	} else {
		routeErr = fmt.Errorf("default route interface %s has no global unicast address", ifc)
	}
	addrs, err := h.allAddrs()
	if err != nil {
		return "", fmt.Errorf("no internal IP: %w; listing interface addresses: %w", routeErr, err)
	}
	if ip := pickIP(addrs); ip != nil {
		return ip.String(), nil
	}
	return "", fmt.Errorf("no internal IP: %w; and no interface has a global unicast address", routeErr)
}

// pickIP returns the first global unicast IPv4 address in addrs, else the first global
// unicast IPv6 one, else nil.
func pickIP(addrs []net.Addr) net.IP {
	var v6 net.IP
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if ip == nil || ip.IsLoopback() || !ip.IsGlobalUnicast() {
			continue
		}
		if ip4 := ip.To4(); ip4 != nil {
			return ip4
		}
		if v6 == nil {
			v6 = ip
		}
	}
	return v6
}
