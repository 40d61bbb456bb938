package nodestatus

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The parsers below read files the kernel or the distribution writes. They take the bytes
// (already size-limited by the reader) and never panic on malformed input: the fuzz tests
// hold them to that.

// memInfo holds the /proc/meminfo figures the node status needs, in bytes.
type memInfo struct {
	Total     int64
	Available int64
	// HasAvailable is false on kernels older than 3.14 without MemAvailable; Available is
	// then estimated as MemFree + Buffers + Cached.
	HasAvailable bool
}

// parseMeminfo parses /proc/meminfo ("MemTotal:  16318480 kB" lines). MemTotal is required.
func parseMeminfo(data []byte) (memInfo, error) {
	var m memInfo
	var free, buffers, cached int64
	var haveTotal bool
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 256), 4096)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "MemTotal":
			dst, haveTotal = &m.Total, true
		case "MemAvailable":
			dst, m.HasAvailable = &m.Available, true
		case "MemFree":
			dst = &free
		case "Buffers":
			dst = &buffers
		case "Cached":
			dst = &cached
		default:
			continue
		}
		v, err := parseKB(rest)
		if err != nil {
			return memInfo{}, fmt.Errorf("meminfo: %s: %w", name, err)
		}
		*dst = v
	}
	if err := sc.Err(); err != nil {
		return memInfo{}, fmt.Errorf("meminfo: %w", err)
	}
	if !haveTotal {
		return memInfo{}, errors.New("meminfo: no MemTotal line")
	}
	if !m.HasAvailable {
		m.Available = sat(sat(free, buffers), cached)
	}
	return m, nil
}

// parseKB parses " 16318480 kB" into bytes.
func parseKB(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 || (len(f) == 2 && f[1] != "kB") {
		return 0, fmt.Errorf("want \"<n> kB\", got %q", strings.TrimSpace(s))
	}
	v, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad number %q", f[0])
	}
	if len(f) == 1 {
		return v, nil // a count (HugePages_Total), not kB; we do not read those
	}
	if v > math.MaxInt64/1024 {
		return 0, fmt.Errorf("%d kB overflows", v)
	}
	return v * 1024, nil
}

// sat adds two non-negative int64s, saturating instead of overflowing.
func sat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// route is one line of /proc/net/route.
type route struct {
	Iface       string
	Destination uint32
	Mask        uint32
	Flags       uint32
	Metric      uint32
}

const rtfUp = 0x1 // RTF_UP in the route's flags

// parseRoutes parses /proc/net/route: a header line, then tab-separated fields with hex
// destination, gateway, flags and mask. Malformed lines are skipped.
func parseRoutes(data []byte) []route {
	var out []route
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 256), 4096)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue // header
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		flags, err2 := strconv.ParseUint(f[3], 16, 32)
		metric, err3 := strconv.ParseUint(f[6], 10, 32)
		mask, err4 := strconv.ParseUint(f[7], 16, 32)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			continue
		}
		out = append(out, route{Iface: f[0], Destination: uint32(dst), Mask: uint32(mask), Flags: uint32(flags), Metric: uint32(metric)})
	}
	return out
}

// defaultRouteIface returns the interface of the up IPv4 default route with the lowest
// metric (the one the kernel uses), or "" if there is none.
func defaultRouteIface(routes []route) string {
	best := -1
	for i, r := range routes {
		if r.Destination != 0 || r.Mask != 0 || r.Flags&rtfUp == 0 || r.Iface == "" {
			continue
		}
		if best < 0 || r.Metric < routes[best].Metric {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return routes[best].Iface
}

// parseOSRelease returns PRETTY_NAME from an os-release file (shell-style KEY=value lines,
// values optionally quoted, see os-release(5)), or "" if it has none.
func parseOSRelease(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 256), 4096)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		v, ok := strings.CutPrefix(line, "PRETTY_NAME=")
		if !ok {
			continue
		}
		return unquoteOSRelease(v)
	}
	return ""
}

// unquoteOSRelease undoes os-release quoting: '…' is literal; "…" and bare words honour
// backslash escapes of $ " \ and `.
func unquoteOSRelease(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("$\"\\`", v[i+1]) >= 0 {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// parseCPUList counts the CPUs in a kernel CPU list such as "0-3,8,10-11"
// (/sys/devices/system/cpu/online).
func parseCPUList(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty CPU list")
	}
	n := 0
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("CPU list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 16); err != nil {
				return 0, fmt.Errorf("CPU list %q: %w", s, err)
			}
		}
		if b < a {
			return 0, fmt.Errorf("CPU list %q: range %s is backwards", s, part)
		}
		n += int(b-a) + 1
	}
	return n, nil
}

// parseLoadavgProcs returns the number of scheduling entities (processes and threads) from
// /proc/loadavg ("0.00 0.01 0.05 1/345 6789"): the figure PID exhaustion is measured in.
func parseLoadavgProcs(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return 0, fmt.Errorf("loadavg %q: too few fields", s)
	}
	_, total, ok := strings.Cut(f[3], "/")
	if !ok {
		return 0, fmt.Errorf("loadavg %q: want running/total as the fourth field", s)
	}
	n, err := strconv.ParseInt(total, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("loadavg %q: bad process count", s)
	}
	return n, nil
}
