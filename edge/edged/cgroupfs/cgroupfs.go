// Package cgroupfs removes pod cgroups from a cgroup v1 hierarchy. Edged removes a pod's on
// teardown; keadm reset edge removes those of every pod the node ran.
package cgroupfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// RemovePod removes <fsRoot>/<controller>/<root>/pod<uid> and its children under every
// controller: the runtime removes only the containers' leaves, the pod level is ours.
// Children go first (cgroupfs directories hold only pseudo-files, so rmdir is the way).
func RemovePod(fsRoot, root, uid string) error {
	dirs, err := filepath.Glob(filepath.Join(fsRoot, "*", root, "pod"+uid))
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	var errs []error
	for _, d := range dirs {
		var sub []string
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		// Deepest first.
		sort.Slice(sub, func(i, j int) bool { return strings.Count(sub[i], "/") > strings.Count(sub[j], "/") })
		for _, p := range sub {
			if err := Rmdir(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Rmdir removes one cgroup directory. On cgroupfs rmdir takes the pseudo-files with it;
// where the files are real (a plain directory standing in for cgroupfs, as in tests) they are
// removed first, only after rmdir said the directory is not empty.
func Rmdir(p string) error {
	err := os.Remove(p)
	if err == nil || errors.Is(err, fs.ErrNotExist) || !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		return err
	}
	ents, rerr := os.ReadDir(p)
	if rerr != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(p, e.Name())); err != nil {
				return err
			}
		}
	}
	return os.Remove(p)
}
