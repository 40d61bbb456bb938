package memtrim

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyRanges(t *testing.T) {
	maps := `00400000-00c00000 r-xp 00000000 fd:01 123 /opt/my bin/edgecore
00c00000-01400000 r--p 00800000 fd:01 123 /opt/my bin/edgecore
01400000-01500000 rw-p 01000000 fd:01 123 /opt/my bin/edgecore
01500000-01600000 r--s 00000000 fd:01 123 /opt/my bin/edgecore
01600000-01700000 r--p 00000000 fd:01 124 /opt/my bin/edgecore2
c000000000-c004000000 rw-p 00000000 00:00 0
7ffd0000-7ffd1000 r-xp 00000000 00:00 0                          [vdso]
`
	got, err := readOnlyRanges([]byte(maps), "/opt/my bin/edgecore")
	if err != nil {
		t.Fatal(err)
	}
	want := []addrRange{{0x400000, 0xc00000}, {0xc00000, 0x1400000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %x, want %x (writable, shared and other files left out)", got, want)
	}
	if _, err := readOnlyRanges([]byte("zz-yy r--p 0 0 0 /x\n"), "/x"); err == nil {
		t.Fatal("bad address accepted")
	}
}

// TestTrim drops the test binary's own read-only pages: its resident file pages go down, and
// code and data that lived in them still work afterwards.
func TestTrim(t *testing.T) {
	before := rssFileKB(t)
	res, err := Trim()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	if res.Mappings == 0 || res.Bytes == 0 {
		t.Fatalf("Trim found no read-only mapping of the executable: %+v", res)
	}
	if after >= before {
		t.Fatalf("RssFile %d kB before Trim, %d kB after: want fewer", before, after)
	}
	if s := strings.Repeat("ok", 3); s != "okokok" {
		t.Fatalf("after Trim: %q", s)
	}
	if _, err := Trim(); err != nil { // twice is fine
		t.Fatal(err)
	}
	t.Logf("trimmed %d mappings (%d bytes): RssFile %d kB -> %d kB", res.Mappings, res.Bytes, before, after)
}

func rssFileKB(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "RssFile:" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

func FuzzReadOnlyRanges(f *testing.F) {
	f.Add([]byte("00400000-00c00000 r-xp 00000000 fd:01 123 /x\n"), "/x")
	f.Add([]byte("a-b rw-p 0 0 0 /x\n1-0 r--p 0 0 0 /x"), "/x")
	f.Fuzz(func(t *testing.T, maps []byte, exe string) {
		rs, err := readOnlyRanges(maps, exe)
		if err != nil {
			return
		}
		for _, r := range rs {
			if r.end <= r.start {
				t.Fatalf("empty range %x", r)
			}
		}
	})
}
