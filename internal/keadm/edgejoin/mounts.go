package edgejoin

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// maxMountInfo bounds the mountinfo read; a host with many pods has a few thousand lines.
const maxMountInfo = 8 << 20

// mount is one line of /proc/<pid>/mountinfo.
type mount struct {
	Point   string
	FSType  string
	Options string // per-mount options (rw, ro, ...)
	Super   string // the filesystem's options (for cgroup v1: its controllers)
}

func readMountInfo(path string) ([]mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMountInfo+1))
	if err != nil {
		return nil, fmt.Errorf("read mounts %s: %w", path, err)
	}
	if len(b) > maxMountInfo {
		return nil, fmt.Errorf("read mounts %s: larger than %d bytes", path, maxMountInfo)
	}
	return parseMountInfo(b)
}

// parseMountInfo reads proc(5) mountinfo: "id parent maj:min root point options [tags...] -
// fstype source superoptions". Paths are octal-escaped (\040 for a space).
func parseMountInfo(b []byte) ([]mount, error) {
	var out []mount
	for n, line := range bytes.Split(b, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		f := strings.Fields(string(line))
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+1 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: malformed", n+1)
		}
		m := mount{Point: unescapeOctal(f[4]), Options: f[5], FSType: f[sep+1]}
		if sep+3 < len(f) {
			m.Super = f[sep+3]
		}
		out = append(out, m)
	}
	return out, nil
}

// unescapeOctal turns the kernel's \ooo escapes back into bytes.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// hasOption reports whether the comma list opts holds o.
func hasOption(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}
