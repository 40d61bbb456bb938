package edgejoin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/skerry-io/skerry/edge/edged/cgroupfs"
)

// serviceStopTimeout bounds stopping edgecore on reset.
const serviceStopTimeout = 30 * time.Second

// Reset undoes join from its record: stops and removes the edgecore service, removes the pods
// Edged ran for the node and their cgroups, the DMI socket, the configuration, the data dir
// (or what join added to it) and the record. It never touches the runtime itself or other
// containers, and it does not talk to the cluster. Resetting a node not joined is a no-op.
// When a step fails the record stays, so running reset again retries.
func Reset(ctx context.Context, o Options) error {
	if err := o.prepare(); err != nil {
		return err
	}
	rec, err := LoadRecord(o.StateDir)
	if err != nil {
		return err
	}
	if rec == nil {
		fmt.Fprintf(o.Stdout, "nothing to reset: no join recorded in %s\n", recordPath(o.StateDir))
		return nil
	}
	endpoint := rec.RuntimeEndpoint
	if o.RuntimeEndpoint != "" {
		endpoint = o.RuntimeEndpoint
	}
	p := &progress{w: o.Stderr, total: 5}
	var failed []error

	p.begin("stopping and removing edgecore")
	if rec.Service.Name != "" {
		sctx, cancel := context.WithTimeout(ctx, serviceStopTimeout)
		err = o.Service.Remove(sctx, rec.Service)
		cancel()
	} else {
		err = nil
		p.detail("edgecore ran in the foreground: nothing installed")
	}
	if p.end(err) != nil {
		// With edgecore still running, it would recreate the pods removed next.
		return fmt.Errorf("stop edgecore: %w", err)
	}

	p.begin("removing the pods of node " + rec.NodeName + " from " + endpoint)
	uids, err := removePods(ctx, &o, endpoint, rec.NodeName)
	if err == nil {
		p.detail("%d pod(s) removed", len(uids))
	}
	if p.end(err) != nil {
		failed = append(failed, fmt.Errorf("remove pods: %w (is the runtime at %s up? pass --remote-runtime-endpoint if it moved)", err, endpoint))
	}

	p.begin("removing pod cgroups under " + rec.CgroupRoot)
	if err := removePodCgroups(o.CgroupFS, rec.CgroupRoot, uids); p.end(err) != nil {
		failed = append(failed, fmt.Errorf("remove pod cgroups: %w", err))
	}

	p.begin("removing edgecore's files")
	if err := removeFiles(&o, rec, p); p.end(err) != nil {
		failed = append(failed, err)
	}

	if len(failed) > 0 {
		return fmt.Errorf("reset incomplete, run it again after fixing: %w", errors.Join(failed...))
	}
	p.begin("removing keadm's record " + recordPath(o.StateDir))
	err = removeIfExists(recordPath(o.StateDir))
	if err == nil && rec.StateDirCreated {
		err = removeIfEmpty(o.StateDir)
	}
	if p.end(err) != nil {
		return err
	}
	fmt.Fprintf(o.Stdout, "edge node %s reset: edgecore, its pods and its files are gone from this host.\n", rec.NodeName)
	fmt.Fprintf(o.Stdout, "The Node object stays in Kubernetes; remove it on the cloud with: kubectl delete node %s\n", rec.NodeName)
	return nil
}

func removePods(ctx context.Context, o *Options, endpoint, node string) ([]string, error) {
	rt, err := o.Runtime(endpoint)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	return rt.RemoveNodePods(ctx, node)
}

// removePodCgroups removes the pod cgroups of uids under root (cgroupfs.RemovePod).
func removePodCgroups(fsRoot, root string, uids []string) error {
	if root == "" {
		return nil
	}
	var errs []error
	for _, uid := range uids {
		if uid == "" || strings.ContainsAny(uid, "/*?[\\") {
			continue
		}
		errs = append(errs, cgroupfs.RemovePod(fsRoot, root, uid))
	}
	return errors.Join(errs...)
}

// removeFiles removes the DMI socket, the configuration and the data dir (or join's part of it).
func removeFiles(o *Options, rec *Record, p *progress) error {
	var errs []error
	rm := func(path string) {
		if err := removeIfExists(path); err != nil {
			errs = append(errs, err)
		} else {
			p.detail("removed %s", path)
		}
	}
	if rec.DMISocket != "" {
		if fi, err := os.Lstat(rec.DMISocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			rm(rec.DMISocket)
		}
	}
	rm(rec.ConfigPath)
	if rec.ConfigDirCreated {
		if err := removeIfEmpty(filepath.Dir(rec.ConfigPath)); err != nil {
			errs = append(errs, err)
		}
	}
	// Pod volumes may still be tmpfs mounts inside the data dir.
	if err := unmountUnder(o.MountInfo, rec.DataDir); err != nil {
		errs = append(errs, err)
	}
	if rec.DataDirCreated {
		if err := os.RemoveAll(rec.DataDir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", rec.DataDir, err))
		} else {
			p.detail("removed %s", rec.DataDir)
		}
	} else if entries, err := os.ReadDir(rec.DataDir); err == nil {
		for _, e := range entries {
			if slices.Contains(rec.DataDirBefore, e.Name()) {
				continue
			}
			path := filepath.Join(rec.DataDir, e.Name())
			if err := os.RemoveAll(path); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", path, err))
			} else {
				p.detail("removed %s", path)
			}
		}
	}
	return errors.Join(errs...)
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(mountInfo, dir string) error {
	mounts, err := readMountInfo(mountInfo)
	if err != nil {
		return err
	}
	var under []string
	for _, m := range mounts {
		if strings.HasPrefix(m.Point, dir+"/") {
			under = append(under, m.Point)
		}
	}
	sort.Slice(under, func(i, j int) bool { return len(under[i]) > len(under[j]) })
	var errs []error
	for _, m := range under {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// removeIfEmpty removes dir when nothing is left in it.
func removeIfEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) > 0) {
		return nil
	}
	if err != nil {
		return err
	}
	return removeIfExists(dir)
}
