package volumes

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The kubelet's AtomicWriter names.
const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
	maxFileNameLen = 255
	maxPathLen     = 4096
)

// fileProjection is one file of an API data volume.
type fileProjection struct {
	Data []byte
	Mode int32
	// FsUser, if set, owns the file (projected service-account tokens).
	FsUser *int64
}

// atomicWriter writes a volume's payload as the kubelet's AtomicWriter does: the files live
// in a timestamped directory ..<timestamp>, the symlink ..data points to it, and every
// top-level user-visible entry is a symlink <name> -> ..data/<name>. An update writes a new
// timestamped directory and swaps ..data with rename(2), so a reader sees the old or the new
// content, never a mix.
type atomicWriter struct {
	dir     string
	fsGroup *int64
	log     *slog.Logger
}

// validatePath is the kubelet's check of a payload path: relative, no ".." element, not
// starting with "..", within length limits.
func validatePath(p string) error {
	if p == "" {
		return errors.New("invalid path: must not be empty")
	}
	if path.IsAbs(p) {
		return fmt.Errorf("invalid path %q: must be a relative path", p)
	}
	if len(p) > maxPathLen {
		return fmt.Errorf("invalid path %q: must be at most %d characters", p, maxPathLen)
	}
	items := strings.Split(p, "/")
	for _, item := range items {
		if item == ".." {
			return fmt.Errorf("invalid path %q: must not contain '..'", p)
		}
		if len(item) > maxFileNameLen {
			return fmt.Errorf("invalid path %q: file names must be at most %d characters", p, maxFileNameLen)
		}
		if strings.ContainsRune(item, 0) {
			return fmt.Errorf("invalid path %q: must not contain NUL", p)
		}
	}
	// Checked on the cleaned path too: "./..x" would otherwise put a top-level name starting
	// with ".." (the atomic writer's own "..data" and "..<timestamp>" space) in the volume.
	c := path.Clean(p)
	if c == "." {
		return fmt.Errorf("invalid path %q: names the volume itself", p)
	}
	if first, _, _ := strings.Cut(c, "/"); strings.HasPrefix(first, "..") {
		return fmt.Errorf("invalid path %q: must not start with '..'", p)
	}
	return nil
}

// cleanPayload validates every path and refuses a path that is both a file and a
// directory of another (e.g. "a" and "a/b").
func cleanPayload(payload map[string]fileProjection) (map[string]fileProjection, error) {
	out := make(map[string]fileProjection, len(payload))
	for p, f := range payload {
		if err := validatePath(p); err != nil {
			return nil, err
		}
		out[path.Clean(p)] = f
	}
	for p := range out {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := out[d]; ok {
				return nil, fmt.Errorf("invalid paths: %q is a file and the directory of %q", d, p)
			}
		}
	}
	return out, nil
}

func (w *atomicWriter) write(payload map[string]fileProjection) error {
	payload, err := cleanPayload(payload)
	if err != nil {
		return err
	}
	dataDir := filepath.Join(w.dir, dataDirName)
	oldTs, err := os.Readlink(dataDir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		oldTs = ""
	}
	if oldTs != "" && (strings.Contains(oldTs, "/") || !strings.HasPrefix(oldTs, "..")) {
		return fmt.Errorf("%s points to %q, not a data directory of this volume", dataDir, oldTs)
	}

	// Unchanged content and modes: nothing to do, nothing touched.
	if oldTs != "" {
		same, err := w.sameAs(filepath.Join(w.dir, oldTs), payload)
		if err != nil {
			return err
		}
		if same && w.linksPresent(payload) {
			return nil
		}
	}

	tsDir, err := os.MkdirTemp(w.dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	tsName := filepath.Base(tsDir)
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tsDir)
		}
	}()
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return err
	}
	if err := writePayload(tsDir, payload); err != nil {
		return err
	}
	if w.fsGroup != nil {
		if err := setOwnership(tsDir, *w.fsGroup, true); err != nil {
			return err
		}
	}

	// Swap ..data: a temporary symlink renamed over it.
	tmpLink := filepath.Join(w.dir, newDataDirName)
	if err := os.Remove(tmpLink); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Symlink(tsName, tmpLink); err != nil {
		return err
	}
	if err := os.Rename(tmpLink, dataDir); err != nil {
		_ = os.Remove(tmpLink)
		return err
	}
	ok = true

	if err := w.createUserVisible(payload); err != nil {
		return err
	}
	if oldTs != "" && oldTs != tsName {
		if err := os.RemoveAll(filepath.Join(w.dir, oldTs)); err != nil {
			return err
		}
	}
	if err := w.removeStale(payload); err != nil {
		return err
	}
	w.log.Debug("volume data updated", "dir", w.dir, "data", tsName)
	return nil
}

// topLevel returns the first element of each payload path: the user-visible entries.
func topLevel(payload map[string]fileProjection) map[string]bool {
	top := make(map[string]bool, len(payload))
	for p := range payload {
		top[strings.SplitN(p, "/", 2)[0]] = true
	}
	return top
}

// sameAs says whether dir holds exactly payload, content and mode.
func (w *atomicWriter) sameAs(dir string, payload map[string]fileProjection) (bool, error) {
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		n++
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		want, ok := payload[filepath.ToSlash(rel)]
		if !ok {
			return errDiffers
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != wantMode(want.Mode, w.fsGroup) {
			return errDiffers
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want.Data) {
			return errDiffers
		}
		return nil
	})
	if errors.Is(err, errDiffers) {
		return false, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return n == len(payload), nil
}

var errDiffers = errors.New("differs")

// wantMode is the mode a file ends with: its own, plus group read when fsGroup is set (the
// kubelet's read-only ownership mask).
func wantMode(mode int32, fsGroup *int64) os.FileMode {
	m := os.FileMode(mode) & os.ModePerm
	if fsGroup != nil {
		m |= 0o440
	}
	return m
}

func (w *atomicWriter) linksPresent(payload map[string]fileProjection) bool {
	for name := range topLevel(payload) {
		target, err := os.Readlink(filepath.Join(w.dir, name))
		if err != nil || target != filepath.Join(dataDirName, name) {
			return false
		}
	}
	return true
}

func writePayload(dir string, payload map[string]fileProjection) error {
	paths := make([]string, 0, len(payload))
	for p := range payload {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		f := payload[p]
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(f.Mode) & os.ModePerm
		if err := os.WriteFile(full, f.Data, mode); err != nil {
			return err
		}
		// WriteFile's mode is filtered by the umask.
		if err := os.Chmod(full, mode); err != nil {
			return err
		}
		if f.FsUser != nil {
			if err := os.Lchown(full, int(*f.FsUser), -1); err != nil {
				return err
			}
		}
	}
	return nil
}

// createUserVisible makes <name> -> ..data/<name> for every top-level entry missing it.
func (w *atomicWriter) createUserVisible(payload map[string]fileProjection) error {
	for name := range topLevel(payload) {
		link := filepath.Join(w.dir, name)
		target := filepath.Join(dataDirName, name)
		if got, err := os.Readlink(link); err == nil && got == target {
			continue
		}
		if _, err := os.Lstat(link); err == nil {
			// Something else is there (a stale entry, or a subPath directory): replace it.
			if err := os.RemoveAll(link); err != nil {
				return err
			}
		}
		if err := os.Symlink(target, link); err != nil {
			return err
		}
	}
	return nil
}

// removeStale removes user-visible links of paths no longer in the payload, and leftover
// data directories of interrupted writes.
func (w *atomicWriter) removeStale(payload map[string]fileProjection) error {
	top := topLevel(payload)
	current, err := os.Readlink(filepath.Join(w.dir, dataDirName))
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == dataDirName || name == current:
			continue
		case strings.HasPrefix(name, ".."):
			if e.IsDir() {
				if err := os.RemoveAll(filepath.Join(w.dir, name)); err != nil {
					return err
				}
			}
		case !top[name] && e.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(filepath.Join(w.dir, name))
			if err == nil && strings.HasPrefix(target, dataDirName+"/") {
				if err := os.Remove(filepath.Join(w.dir, name)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// setOwnership is the kubelet's fsGroup treatment: group fsGroup on everything under dir
// (symlinks untouched), group read (and write unless readOnly) on files, setgid and group
// search on directories.
func setOwnership(dir string, fsGroup int64, readOnly bool) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&os.ModeSymlink != 0 {
			return nil
		}
		if err := os.Lchown(p, -1, int(fsGroup)); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mask := os.FileMode(0o660)
		if readOnly {
			mask = 0o440
		}
		if fi.IsDir() {
			mask |= os.ModeSetgid | 0o110
		}
		return os.Chmod(p, fi.Mode()&(os.ModePerm|os.ModeSetgid|os.ModeSetuid|os.ModeSticky)|mask)
	})
}
