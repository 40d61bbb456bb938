package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
)

// rootFS is an in-memory root filesystem that serialises to a reproducible layer tarball: entries
// sorted by path, owner 0:0 by number only, one fixed mtime, parents created implicitly. The same
// calls therefore always give the same bytes, and so the same layer and image digests.
type rootFS struct {
	mtime   time.Time
	entries map[string]*fsEntry
}

type fsEntry struct {
	typ    byte // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	mode   int64
	data   []byte
	target string
}

func newRootFS(mtime time.Time) *rootFS {
	return &rootFS{mtime: mtime.UTC().Truncate(time.Second), entries: map[string]*fsEntry{}}
}

// clean turns "/bin/sh" into "bin/sh", the form layer tarballs use.
func clean(p string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		return "", fmt.Errorf("path %q names the root", p)
	}
	return c, nil
}

func (r *rootFS) add(p string, e *fsEntry) error {
	c, err := clean(p)
	if err != nil {
		return err
	}
	if old, ok := r.entries[c]; ok && !(old.typ == tar.TypeDir && e.typ == tar.TypeDir) {
		return fmt.Errorf("%s added twice", c)
	}
	r.entries[c] = e
	return nil
}

// Dir adds a directory; mode may carry the sticky bit (0o1777 for /tmp).
func (r *rootFS) Dir(p string, mode int64) error {
	return r.add(p, &fsEntry{typ: tar.TypeDir, mode: mode})
}

// File adds a regular file holding data.
func (r *rootFS) File(p string, mode int64, data []byte) error {
	return r.add(p, &fsEntry{typ: tar.TypeReg, mode: mode, data: data})
}

// Symlink adds a symbolic link at p pointing to target (kept verbatim, usually relative).
func (r *rootFS) Symlink(p, target string) error {
	return r.add(p, &fsEntry{typ: tar.TypeSymlink, mode: 0o777, target: target})
}

// Tar serialises the tree. Missing parent directories are emitted with mode 0755.
func (r *rootFS) Tar() ([]byte, error) {
	all := maps.Clone(r.entries)
	for p := range r.entries {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			e, ok := all[dir]
			if !ok {
				all[dir] = &fsEntry{typ: tar.TypeDir, mode: 0o755}
			} else if e.typ != tar.TypeDir {
				return nil, fmt.Errorf("%s is not a directory but holds %s", dir, p)
			}
		}
	}
	names := make([]string, 0, len(all))
	for p := range all {
		names = append(names, p)
	}
	// A parent is a prefix of its children, so plain byte order puts it first.
	slices.Sort(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		e := all[p]
		hdr := &tar.Header{
			Typeflag: e.typ,
			Name:     p,
			Mode:     e.mode,
			ModTime:  r.mtime,
			Format:   tar.FormatPAX,
		}
		switch e.typ {
		case tar.TypeDir:
			hdr.Name += "/"
		case tar.TypeReg:
			hdr.Size = int64(len(e.data))
		case tar.TypeSymlink:
			hdr.Linkname = e.target
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", p, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, fmt.Errorf("tar data %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// busyboxRootFS lays out a minimal busybox userland: /bin/busybox, one relative symlink per applet
// in /bin, the user and group databases (root and nobody) and the usual top-level directories.
func busyboxRootFS(mtime time.Time, busybox []byte, applets []string) (*rootFS, error) {
	r := newRootFS(mtime)
	if err := r.File("/bin/busybox", 0o755, busybox); err != nil {
		return nil, err
	}
	for _, a := range applets {
		// The list comes from running a binary: accept only plain names.
		if a == "" || a == "busybox" || strings.ContainsAny(a, "/\x00") || a == "." || a == ".." {
			continue
		}
		if err := r.Symlink("/bin/"+a, "busybox"); err != nil {
			return nil, err
		}
	}
	steps := []error{
		r.File("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")),
		r.File("/etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")),
		r.Dir("/tmp", 0o1777),
		r.Dir("/root", 0o700),
		r.Dir("/var", 0o755),
		r.Dir("/home", 0o755),
	}
	for _, err := range steps {
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// singleBinaryRootFS holds one static binary at /<name> plus /tmp, enough for a Go program.
func singleBinaryRootFS(mtime time.Time, name string, binary []byte) (*rootFS, error) {
	r := newRootFS(mtime)
	if err := r.File("/"+name, 0o755, binary); err != nil {
		return nil, err
	}
	if err := r.Dir("/tmp", 0o1777); err != nil {
		return nil, err
	}
	return r, nil
}
