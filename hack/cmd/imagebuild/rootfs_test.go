package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var testTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func readTar(t *testing.T, data []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr, body})
	}
}

func TestBusyboxLayout(t *testing.T) {
	fs, err := busyboxRootFS(testTime, []byte("#!fake busybox"), []string{"sh", "ls", "[", "busybox", "../evil", ""})
	if err != nil {
		t.Fatal(err)
	}
	data, err := fs.Tar()
	if err != nil {
		t.Fatal(err)
	}
	entries := readTar(t, data)
	byName := map[string]tarEntry{}
	var names []string
	for _, e := range entries {
		names = append(names, e.hdr.Name)
		byName[e.hdr.Name] = e
		if e.hdr.Uid != 0 || e.hdr.Gid != 0 || e.hdr.Uname != "" || e.hdr.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q, want numeric 0:0", e.hdr.Name, e.hdr.Uid, e.hdr.Gid, e.hdr.Uname, e.hdr.Gname)
		}
		if !e.hdr.ModTime.Equal(testTime) {
			t.Errorf("%s: mtime %v, want %v", e.hdr.Name, e.hdr.ModTime, testTime)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %q", names)
	}

	want := []string{
		"bin/", "bin/[", "bin/busybox", "bin/ls", "bin/sh",
		"etc/", "etc/group", "etc/passwd",
		"home/", "root/", "tmp/", "var/",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("entries\n got %q\nwant %q", names, want)
	}

	for _, applet := range []string{"bin/sh", "bin/ls", "bin/["} {
		e := byName[applet]
		if e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != "busybox" {
			t.Errorf("%s: type %c -> %q, want symlink -> busybox", applet, e.hdr.Typeflag, e.hdr.Linkname)
		}
	}
	bb := byName["bin/busybox"]
	if bb.hdr.Typeflag != tar.TypeReg || bb.hdr.Mode != 0o755 || string(bb.data) != "#!fake busybox" {
		t.Errorf("bin/busybox: type %c mode %o data %q", bb.hdr.Typeflag, bb.hdr.Mode, bb.data)
	}
	if m := byName["tmp/"].hdr.Mode; m != 0o1777 {
		t.Errorf("tmp mode %o, want 1777", m)
	}
	if m := byName["root/"].hdr.Mode; m != 0o700 {
		t.Errorf("root mode %o, want 700", m)
	}
	if m := byName["bin/"].hdr.Mode; byName["bin/"].hdr.Typeflag != tar.TypeDir || m != 0o755 {
		t.Errorf("implicit bin/: type %c mode %o, want dir 755", byName["bin/"].hdr.Typeflag, m)
	}
	if p := string(byName["etc/passwd"].data); p != "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" {
		t.Errorf("etc/passwd = %q", p)
	}
}

func TestTarIsDeterministic(t *testing.T) {
	build := func(applets []string) []byte {
		fs, err := busyboxRootFS(testTime, []byte("binary"), applets)
		if err != nil {
			t.Fatal(err)
		}
		data, err := fs.Tar()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	// Input order must not matter, and map iteration order (random per run) must not leak out.
	a := sha256.Sum256(build([]string{"sh", "ls", "cat", "echo", "mount"}))
	for range 20 {
		if b := sha256.Sum256(build([]string{"mount", "echo", "cat", "ls", "sh"})); a != b {
			t.Fatalf("same tree gave different tarballs: %x vs %x", a, b)
		}
	}
}

func TestImageDigestIsStable(t *testing.T) {
	o := &options{created: testTime, demoVersion: "0.1.0"}
	digest := func(bin string) string {
		fs, err := singleBinaryRootFS(o.created, "pause", []byte(bin))
		if err != nil {
			t.Fatal(err)
		}
		img, err := image(o, fs, testConfig())
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	first := digest("pause binary")
	if again := digest("pause binary"); again != first {
		t.Errorf("digest changed between builds: %s then %s", first, again)
	}
	if other := digest("another binary"); other == first {
		t.Error("different content gave the same digest")
	}
}

func TestRootFSRejectsConflicts(t *testing.T) {
	fs := newRootFS(testTime)
	if err := fs.File("/a", 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := fs.File("/a", 0o644, nil); err == nil {
		t.Error("adding /a twice succeeded")
	}
	if err := fs.File("/a/b", 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Tar(); err == nil {
		t.Error("a file used as a directory was accepted")
	}
	if err := fs.Dir("/", 0o755); err == nil {
		t.Error("adding the root succeeded")
	}
}

func testConfig() v1.Config {
	return v1.Config{Entrypoint: []string{"/pause"}}
}
