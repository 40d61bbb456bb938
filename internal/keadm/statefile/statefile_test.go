package statefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteAtomicAndRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rec.json")
	if b, err := Read(p, 10); b != nil || err != nil {
		t.Fatalf("missing file: %q, %v; want nil, nil", b, err)
	}
	if err := WriteAtomic(p, []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st, err)
	}
	if b, err := Read(p, 7); err != nil || string(b) != `{"a":1}` {
		t.Fatalf("read %q, %v", b, err)
	}
	if _, err := Read(p, 6); err == nil || !strings.Contains(err.Error(), "larger than 6 bytes") {
		t.Fatalf("over the limit: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestDecodeStrict(t *testing.T) {
	var v struct{ A int }
	for _, tc := range []struct{ in, want string }{
		{`{"A":1}`, ""},
		{`{"A":1,"B":2}`, "unknown field"},
		{`{"A":1} {}`, "trailing"},
		{`[`, "EOF"},
	} {
		err := DecodeStrict([]byte(tc.in), &v)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeStrict(%s) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestSafePath(t *testing.T) {
	for p, want := range map[string]bool{"/etc/kubeedge": true, "/": false, "rel": false, "/a/../b": false, "": false, "/a/": false} {
		if SafePath(p) != want {
			t.Errorf("SafePath(%q) = %v", p, !want)
		}
	}
}
