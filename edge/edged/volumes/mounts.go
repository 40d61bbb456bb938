package volumes

import (
	"context"
	"errors"
	"fmt"
	"github.com/skerry-io/skerry/edge/edged/expand"
	"os"
	"path"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

// Mounts implements edged.Volumes.
//
// configMap, secret, downwardAPI and projected volumes are always mounted read-only, as the
// kubelet does. A subPath is resolved now, inside the volume (an escape through ".." or a
// symlink is refused); on writable volumes a missing subPath directory is created. As with
// the kubelet, a container mounting an API data volume with subPath does not receive
// updates of its content: it keeps what was there when it was created.
//
// subPathExpr is expanded with the container's environment, resolved from the pod's own
// status for status.* fields (Mounts has no Facts).
func (m *Manager) Mounts(pod *corev1.Pod, c *corev1.Container) ([]*runtimeapi.Mount, error) {
	var env map[string]string
	out := make([]*runtimeapi.Mount, 0, len(c.VolumeMounts))
	for i := range c.VolumeMounts {
		vm := &c.VolumeMounts[i]
		field := fmt.Sprintf("container %s: volumeMounts[%d]", c.Name, i)
		vi := -1
		for j := range pod.Spec.Volumes {
			if pod.Spec.Volumes[j].Name == vm.Name {
				vi = j
				break
			}
		}
		if vi < 0 {
			return nil, fmt.Errorf("%s: no volume named %q in the pod", field, vm.Name)
		}
		v := &pod.Spec.Volumes[vi]
		root, readOnly, err := m.volumeRoot(pod, vi)
		if err != nil {
			return nil, err
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			if env == nil {
				env, err = m.envMap(pod, c)
				if err != nil {
					return nil, fmt.Errorf("%s.subPathExpr: %w", field, err)
				}
			}
			var missing []string
			sub = expand.Expand(vm.SubPathExpr, func(name string) (string, bool) {
				val, ok := env[name]
				if !ok || val == "" {
					missing = append(missing, name)
				}
				return val, ok
			})
			if len(missing) > 0 {
				return nil, fmt.Errorf("%s.subPathExpr %q: no value for %s", field, vm.SubPathExpr, strings.Join(missing, ", "))
			}
		}
		hostPath := root
		if sub != "" {
			hostPath, err = resolveSubPath(root, sub, !readOnly)
			if err != nil {
				return nil, fmt.Errorf("%s (volume %q) subPath %q: %w", field, v.Name, sub, err)
			}
		}
		mnt := &runtimeapi.Mount{
			ContainerPath: vm.MountPath,
			HostPath:      hostPath,
			Readonly:      vm.ReadOnly || readOnly,
		}
		if p := vm.MountPropagation; p != nil {
			switch *p {
			case corev1.MountPropagationNone:
				mnt.Propagation = runtimeapi.MountPropagation_PROPAGATION_PRIVATE
			case corev1.MountPropagationHostToContainer:
				mnt.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case corev1.MountPropagationBidirectional:
				mnt.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			default:
				return nil, fmt.Errorf("%s.mountPropagation %q: %w", field, *p, edged.ErrUnsupported)
			}
		}
		if r := vm.RecursiveReadOnly; r != nil && *r == corev1.RecursiveReadOnlyEnabled {
			// containerd 1.6 cannot do it, and the kubelet refuses Enabled then.
			return nil, fmt.Errorf("%s.recursiveReadOnly: %w", field, edged.ErrUnsupported)
		}
		out = append(out, mnt)
	}
	return out, nil
}

// volumeRoot returns the host directory of pod volume i, and whether it is an API data
// volume (always read-only).
func (m *Manager) volumeRoot(pod *corev1.Pod, i int) (string, bool, error) {
	v := &pod.Spec.Volumes[i]
	field, ok := volumeField(i, v)
	if !ok {
		return "", false, fmt.Errorf("spec.volumes[%d].%s (volume %q): %w", i, field, v.Name, edged.ErrUnsupported)
	}
	var kind string
	switch {
	case v.HostPath != nil:
		return v.HostPath.Path, false, nil
	case v.EmptyDir != nil:
		kind = kindEmptyDir
	case v.ConfigMap != nil:
		kind = kindConfigMap
	case v.Secret != nil:
		kind = kindSecret
	case v.DownwardAPI != nil:
		kind = kindDownward
	case v.Projected != nil:
		kind = kindProjected
	}
	dir, err := m.volumeDir(pod.UID, kind, v.Name)
	return dir, kind != kindEmptyDir, err
}

// resolveSubPath returns the real path of sub inside root, creating missing directories
// (with root's mode, as the kubelet does) when create is set. Each existing element is
// resolved, and every step must stay inside root.
func resolveSubPath(root, sub string, create bool) (string, error) {
	if path.IsAbs(sub) || filepath.IsAbs(sub) {
		return "", errors.New("must be a relative path")
	}
	for _, el := range strings.Split(sub, "/") {
		if el == ".." {
			return "", errors.New("must not contain '..'")
		}
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	rootInfo, err := os.Stat(realRoot)
	if err != nil {
		return "", err
	}
	cur := realRoot
	for _, el := range strings.Split(path.Clean(sub), "/") {
		if el == "." || el == "" {
			continue
		}
		next := filepath.Join(cur, el)
		_, err := os.Lstat(next)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if !create {
				return "", fmt.Errorf("%s does not exist in the volume: %w", el, edged.ErrNotReady)
			}
			if err := os.Mkdir(next, rootInfo.Mode().Perm()); err != nil && !errors.Is(err, os.ErrExist) {
				return "", err
			}
			if err := os.Chmod(next, rootInfo.Mode().Perm()); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		}
		resolved, err := filepath.EvalSymlinks(next)
		if err != nil {
			return "", err
		}
		if !within(realRoot, resolved) {
			return "", fmt.Errorf("resolves to %s, outside the volume: refusing", resolved)
		}
		cur = resolved
	}
	return cur, nil
}

// within says whether p is root or below it.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return false
	}
	return rel == "." || (rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel))
}

// envMap resolves the container's environment for subPathExpr, with Facts from the pod's
// status.
func (m *Manager) envMap(pod *corev1.Pod, c *corev1.Container) (map[string]string, error) {
	facts := edged.Facts{NodeName: pod.Spec.NodeName, HostIP: pod.Status.HostIP, PodIP: pod.Status.PodIP}
	for _, ip := range pod.Status.PodIPs {
		facts.PodIPs = append(facts.PodIPs, ip.IP)
	}
	kvs, err := m.Resolve(context.Background(), pod, c, facts)
	if err != nil {
		return nil, err
	}
	env := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		env[kv.Key] = string(kv.Value)
	}
	return env, nil
}
