package nodestatus

import (
	"slices"
	"strings"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	m, err := parseMeminfo([]byte(testMeminfo))
	if err != nil {
		t.Fatal(err)
	}
	if m.Total != 8000000*1024 || m.Available != 4000000*1024 || !m.HasAvailable {
		t.Errorf("got %+v", m)
	}

	// An old kernel without MemAvailable: estimated from free, buffers and cache.
	m, err = parseMeminfo([]byte("MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 1 kB\nCached: 5 kB\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Available != 16*1024 || m.HasAvailable {
		t.Errorf("estimate: got %+v", m)
	}

	for name, in := range map[string]string{
		"no total":  "MemFree: 10 kB\n",
		"bad unit":  "MemTotal: 10 MB\n",
		"negative":  "MemTotal: -1 kB\n",
		"overflow":  "MemTotal: 9223372036854775807 kB\n",
		"not a num": "MemTotal: lots kB\n",
		"long line": "MemTotal: 1 kB\n" + strings.Repeat("x", 5000) + "\n",
	} {
		if _, err := parseMeminfo([]byte(in)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	routes := parseRoutes([]byte(testRoute))
	if len(routes) != 3 {
		t.Fatalf("got %d routes, want 3: %+v", len(routes), routes)
	}
	if got := defaultRouteIface(routes); got != "eth0" {
		t.Errorf("default route via %q, want eth0 (lowest metric)", got)
	}
	// A default route that is down does not count; malformed lines are skipped.
	down := "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n" +
		"eth0\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\n" +
		"garbage line\n" +
		"eth1\tZZZ\t0\t0003\t0\t0\t0\t00000000\n"
	if got := defaultRouteIface(parseRoutes([]byte(down))); got != "" {
		t.Errorf("got %q, want no default route", got)
	}
}

func TestParseOSRelease(t *testing.T) {
	for in, want := range map[string]string{
		"PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n":              "Ubuntu 24.04.1 LTS",
		"NAME=x\nPRETTY_NAME='Debian \"12\"'\n":             `Debian "12"`,
		"PRETTY_NAME=Alpine\n":                              "Alpine",
		`PRETTY_NAME="say \"hi\" \$HOME \\ \n"` + "\n":      `say "hi" $HOME \ \n`,
		"# PRETTY_NAME=commented\nNAME=Foo\n":               "",
		"  PRETTY_NAME=\"indented\"  \n":                    "indented",
		"PRETTY_NAME=\"first\"\nPRETTY_NAME=\"second\"\n":   "first",
		"PRETTY_NAME=\"\"\n":                                "",
		"PRETTY_NAME=\"unterminated\n":                      "\"unterminated",
		"ID=fedora\nPRETTY_NAME=\"Fedora Linux 41\"\nX=1\n": "Fedora Linux 41",
	} {
		if got := parseOSRelease([]byte(in)); got != want {
			t.Errorf("parseOSRelease(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCPUListAndLoadavg(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-3\n": 4, "0-3,8,10-11": 7} {
		if got, err := parseCPUList(in); err != nil || got != want {
			t.Errorf("parseCPUList(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "3-1", "a", "0-", "1,,2"} {
		if _, err := parseCPUList(in); err == nil {
			t.Errorf("parseCPUList(%q): want an error", in)
		}
	}
	if n, err := parseLoadavgProcs("0.00 0.01 0.05 1/345 6789\n"); err != nil || n != 345 {
		t.Errorf("loadavg: %d, %v", n, err)
	}
	for _, in := range []string{"", "1 2 3", "1 2 3 45 6", "1 2 3 1/-5 6"} {
		if _, err := parseLoadavgProcs(in); err == nil {
			t.Errorf("parseLoadavgProcs(%q): want an error", in)
		}
	}
}

func FuzzParseMeminfo(f *testing.F) {
	f.Add([]byte(testMeminfo))
	f.Add([]byte("MemTotal: 1 kB\nMemFree: 9223372036854775 kB\nBuffers: 9223372036854775 kB\nCached: 9223372036854775 kB\n"))
	f.Add([]byte("MemTotal:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseMeminfo(data)
		if err == nil && (m.Total < 0 || m.Available < 0) {
			t.Errorf("negative figures %+v from %q", m, data)
		}
	})
}

func FuzzParseRoutes(f *testing.F) {
	f.Add([]byte(testRoute))
	f.Add([]byte("h\n\t00000000\t0\t1\t0\t0\t0\t00000000\n"))
	f.Add([]byte("h\neth0 0 0 ffffffff 0 0 4294967295 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		routes := parseRoutes(data)
		ifc := defaultRouteIface(routes)
		if ifc != "" && !slices.ContainsFunc(routes, func(r route) bool { return r.Iface == ifc }) {
			t.Errorf("default interface %q is not in %+v", ifc, routes)
		}
	})
}

func FuzzParseOSRelease(f *testing.F) {
	f.Add([]byte(testFiles()["/etc/os-release"]))
	f.Add([]byte("PRETTY_NAME=\"\\\"\n"))
	f.Add([]byte("PRETTY_NAME='\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if got := parseOSRelease(data); len(got) > len(data) {
			t.Errorf("result %q longer than the input %q", got, data)
		}
	})
}
