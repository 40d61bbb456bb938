// Package volumes prepares a pod's volumes on the host and resolves its containers'
// environment, with the kubelet's semantics (edged.Volumes and edged.Env).
//
// Supported volume types: emptyDir (disk, or tmpfs for medium Memory), hostPath (with the
// kubelet's type checks), configMap, secret, downwardAPI and projected (configMap, secret,
// downwardAPI and serviceAccountToken sources). Every other type fails the pod with an error
// wrapping edged.ErrUnsupported that names the field.
//
// Layout: <Root>/<podUID>/volumes/<kind>/<name>, <kind> being the kubelet's plugin
// directory name (kubernetes.io~empty-dir, kubernetes.io~configmap, ...), so tools that know
// the kubelet's layout find them.
//
// Not enforced: emptyDir sizeLimit on disk (the kubelet evicts the pod when it is exceeded;
// Edged does not watch usage). On medium Memory, sizeLimit becomes the tmpfs size.
package volumes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skerry-io/skerry/edge/edged"
)

// The kubelet's plugin directory names.
const (
	kindEmptyDir  = "kubernetes.io~empty-dir"
	kindConfigMap = "kubernetes.io~configmap"
	kindSecret    = "kubernetes.io~secret"
	kindDownward  = "kubernetes.io~downward-api"
	kindProjected = "kubernetes.io~projected"
)

// Config configures a Manager.
type Config struct {
	// Root holds one directory per pod (e.g. <dataDir>/pods).
	Root string
	// Objects reads ConfigMaps, Secrets and tokens.
	Objects edged.Objects
	// Logger; nil discards.
	Logger *slog.Logger
	// Allocatable is the node's allocatable resources: the value of a resourceFieldRef to a
	// limit the container does not set (as the kubelet does). Resources missing here are
	// taken from the host: CPU count, MemTotal, and the size of Root's file system.
	Allocatable corev1.ResourceList
}

// Manager implements edged.Volumes and edged.Env.
type Manager struct {
	root    string
	objects edged.Objects
	log     *slog.Logger

	allocOnce sync.Once
	alloc     corev1.ResourceList
	cfgAlloc  corev1.ResourceList
}

var (
	_ edged.Volumes = (*Manager)(nil)
	_ edged.Env     = (*Manager)(nil)
)

// New returns a Manager.
func New(cfg Config) *Manager {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{root: cfg.Root, objects: cfg.Objects, log: log, cfgAlloc: cfg.Allocatable}
}

// podDir is <Root>/<uid>; the uid becomes a path element, so it is checked.
func (m *Manager) podDir(uid types.UID) (string, error) {
	s := string(uid)
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return "", fmt.Errorf("invalid pod uid %q", s)
	}
	return filepath.Join(m.root, s), nil
}

// volumeDir is where a volume of the given kind lives.
func (m *Manager) volumeDir(uid types.UID, kind, name string) (string, error) {
	pd, err := m.podDir(uid)
	if err != nil {
		return "", err
	}
	return filepath.Join(pd, "volumes", kind, name), nil
}

// volumeField names the volume's type the way the API does, for error messages.
func volumeField(i int, v *corev1.Volume) (field string, supported bool) {
	s := &v.VolumeSource
	switch {
	case s.EmptyDir != nil:
		return "emptyDir", true
	case s.HostPath != nil:
		return "hostPath", true
	case s.ConfigMap != nil:
		return "configMap", true
	case s.Secret != nil:
		return "secret", true
	case s.DownwardAPI != nil:
		return "downwardAPI", true
	case s.Projected != nil:
		return "projected", true
	case s.PersistentVolumeClaim != nil:
		return "persistentVolumeClaim", false
	case s.CSI != nil:
		return "csi", false
	case s.Ephemeral != nil:
		return "ephemeral", false
	case s.Image != nil:
		return "image", false
	case s.ISCSI != nil:
		return "iscsi", false
	case s.NFS != nil:
		return "nfs", false
	case s.GCEPersistentDisk != nil:
		return "gcePersistentDisk", false
	case s.AWSElasticBlockStore != nil:
		return "awsElasticBlockStore", false
	case s.GitRepo != nil:
		return "gitRepo", false
	case s.Glusterfs != nil:
		return "glusterfs", false
	case s.RBD != nil:
		return "rbd", false
	case s.FlexVolume != nil:
		return "flexVolume", false
	case s.Cinder != nil:
		return "cinder", false
	case s.CephFS != nil:
		return "cephfs", false
	case s.Flocker != nil:
		return "flocker", false
	case s.FC != nil:
		return "fc", false
	case s.AzureFile != nil:
		return "azureFile", false
	case s.AzureDisk != nil:
		return "azureDisk", false
	case s.VsphereVolume != nil:
		return "vsphereVolume", false
	case s.Quobyte != nil:
		return "quobyte", false
	case s.PhotonPersistentDisk != nil:
		return "photonPersistentDisk", false
	case s.PortworxVolume != nil:
		return "portworxVolume", false
	case s.ScaleIO != nil:
		return "scaleIO", false
	case s.StorageOS != nil:
		return "storageos", false
	}
	return "", false
}

// checkSupported fails fast, before anything is written, on what Edged cannot do, so the
// pod fails with that message rather than waiting on another volume.
func checkSupported(pod *corev1.Pod) error {
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if errs := validation.IsDNS1123Label(v.Name); len(errs) > 0 {
			return fmt.Errorf("spec.volumes[%d].name %q: %s", i, v.Name, strings.Join(errs, "; "))
		}
		field, ok := volumeField(i, v)
		if field == "" {
			return fmt.Errorf("spec.volumes[%d] (%q): no volume source or an unknown one: %w", i, v.Name, edged.ErrUnsupported)
		}
		if !ok {
			return fmt.Errorf("spec.volumes[%d].%s (volume %q): %w", i, field, v.Name, edged.ErrUnsupported)
		}
		if ed := v.EmptyDir; ed != nil && ed.Medium != corev1.StorageMediumDefault && ed.Medium != corev1.StorageMediumMemory {
			return fmt.Errorf("spec.volumes[%d].emptyDir.medium %q (volume %q): %w", i, ed.Medium, v.Name, edged.ErrUnsupported)
		}
		if p := v.Projected; p != nil {
			for j, src := range p.Sources {
				switch {
				case src.ClusterTrustBundle != nil:
					return fmt.Errorf("spec.volumes[%d].projected.sources[%d].clusterTrustBundle (volume %q): %w", i, j, v.Name, edged.ErrUnsupported)
				case src.PodCertificate != nil:
					return fmt.Errorf("spec.volumes[%d].projected.sources[%d].podCertificate (volume %q): %w", i, j, v.Name, edged.ErrUnsupported)
				}
			}
		}
	}
	return nil
}

// Setup implements edged.Volumes. Unsupported volumes are reported before anything is made;
// then every volume is set up, and the errors of those that could not be are joined.
func (m *Manager) Setup(ctx context.Context, pod *corev1.Pod, facts edged.Facts) error {
	if err := checkSupported(pod); err != nil {
		return err
	}
	var errs []error
	for i := range pod.Spec.Volumes {
		if err := m.setupVolume(ctx, pod, i, facts); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) setupVolume(ctx context.Context, pod *corev1.Pod, i int, facts edged.Facts) error {
	v := &pod.Spec.Volumes[i]
	s := &v.VolumeSource
	var fsGroup *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	switch {
	case s.EmptyDir != nil:
		dir, err := m.volumeDir(pod.UID, kindEmptyDir, v.Name)
		if err != nil {
			return err
		}
		if err := m.setupEmptyDir(dir, s.EmptyDir, fsGroup); err != nil {
			return fmt.Errorf("spec.volumes[%d].emptyDir (volume %q): %w", i, v.Name, err)
		}
		return nil
	case s.HostPath != nil:
		if err := checkHostPath(s.HostPath); err != nil {
			return fmt.Errorf("spec.volumes[%d].hostPath (volume %q): %w", i, v.Name, err)
		}
		return nil
	}

	var kind string
	var tmpfs bool
	var payload map[string]fileProjection
	var err error
	switch {
	case s.ConfigMap != nil:
		kind = kindConfigMap
		payload, err = m.configMapPayload(ctx, pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, modeOr(s.ConfigMap.DefaultMode), optional(s.ConfigMap.Optional))
	case s.Secret != nil:
		kind, tmpfs = kindSecret, true
		payload, err = m.secretPayload(ctx, pod.Namespace, s.Secret.SecretName, s.Secret.Items, modeOr(s.Secret.DefaultMode), optional(s.Secret.Optional))
	case s.DownwardAPI != nil:
		kind = kindDownward
		payload, err = m.downwardPayload(pod, s.DownwardAPI.Items, modeOr(s.DownwardAPI.DefaultMode), facts)
	case s.Projected != nil:
		kind, tmpfs = kindProjected, true
		payload, err = m.projectedPayload(ctx, pod, s.Projected, facts)
	}
	if err != nil {
		return fmt.Errorf("spec.volumes[%d].%s (volume %q): %w", i, fieldName(kind), v.Name, err)
	}
	dir, err := m.volumeDir(pod.UID, kind, v.Name)
	if err != nil {
		return err
	}
	if err := m.prepareDataDir(dir, tmpfs); err != nil {
		return fmt.Errorf("spec.volumes[%d].%s (volume %q): %w", i, fieldName(kind), v.Name, err)
	}
	w := atomicWriter{dir: dir, fsGroup: fsGroup, log: m.log}
	if err := w.write(payload); err != nil {
		return fmt.Errorf("spec.volumes[%d].%s (volume %q): %w", i, fieldName(kind), v.Name, err)
	}
	return nil
}

func fieldName(kind string) string {
	switch kind {
	case kindConfigMap:
		return "configMap"
	case kindSecret:
		return "secret"
	case kindDownward:
		return "downwardAPI"
	case kindProjected:
		return "projected"
	}
	return kind
}

func optional(b *bool) bool { return b != nil && *b }

// modeOr is the kubelet's default file mode for API data volumes (0644).
func modeOr(m *int32) int32 {
	if m != nil {
		return *m
	}
	return corev1.ConfigMapVolumeSourceDefaultMode
}

// setupEmptyDir makes the directory world-writable as the kubelet does (so a non-root
// container can write), on tmpfs for medium Memory.
func (m *Manager) setupEmptyDir(dir string, ed *corev1.EmptyDirVolumeSource, fsGroup *int64) error {
	created, err := mkdirNew(dir)
	if err != nil {
		return err
	}
	if ed.Medium == corev1.StorageMediumMemory {
		mounted, err := isMountPoint(dir)
		if err != nil {
			return err
		}
		if !mounted {
			opts := ""
			if ed.SizeLimit != nil && ed.SizeLimit.Value() > 0 {
				opts = fmt.Sprintf("size=%d", ed.SizeLimit.Value())
			}
			if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
				return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
			}
			created = true
			m.log.Debug("mounted tmpfs", "dir", dir, "options", opts)
		}
	}
	if !created {
		return nil
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	if fsGroup != nil {
		return setOwnership(dir, *fsGroup, false)
	}
	return nil
}

// prepareDataDir makes an API data volume's directory, on tmpfs for secrets and projected
// volumes (so secrets and tokens never reach the disk, as with the kubelet).
func (m *Manager) prepareDataDir(dir string, tmpfs bool) error {
	created, err := mkdirNew(dir)
	if err != nil {
		return err
	}
	if tmpfs {
		mounted, err := isMountPoint(dir)
		if err != nil {
			return err
		}
		if !mounted {
			if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=1777"); err != nil {
				return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
			}
			return nil
		}
	}
	if created {
		return os.Chmod(dir, 0o777)
	}
	return nil
}

// mkdirNew creates dir (and parents) and says whether dir itself was created.
func mkdirNew(dir string) (bool, error) {
	if fi, err := os.Lstat(dir); err == nil {
		if !fi.IsDir() {
			return false, fmt.Errorf("%s exists and is not a directory", dir)
		}
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		return false, err
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// isMountPoint compares the device of dir with its parent's: enough for the tmpfs mounts
// this package makes.
func isMountPoint(dir string) (bool, error) {
	var st, pst syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return false, err
	}
	if err := syscall.Lstat(filepath.Dir(dir), &pst); err != nil {
		return false, err
	}
	return st.Dev != pst.Dev || st.Ino == pst.Ino, nil
}

// checkHostPath applies the kubelet's hostPath type checks. A failed check wraps
// ErrNotReady: like the kubelet, Edged retries (the path may appear later).
func checkHostPath(h *corev1.HostPathVolumeSource) error {
	t := corev1.HostPathUnset
	if h.Type != nil {
		t = *h.Type
	}
	p := h.Path
	fail := func(what string) error {
		return fmt.Errorf("hostPath type check failed: %s is not %s (type %s): %w", p, what, t, edged.ErrNotReady)
	}
	switch t {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("hostPath %s (type %s): %w", p, t, err)
			}
			return nil
		}
		if err != nil || !fi.IsDir() {
			return fail("a directory")
		}
		return nil
	case corev1.HostPathDirectory:
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			return fail("a directory")
		}
		return nil
	case corev1.HostPathFileOrCreate:
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			// The kubelet does not create the parent directories.
			f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return fmt.Errorf("hostPath %s (type %s): %w", p, t, err)
			}
			return f.Close()
		}
		if err != nil || fi.IsDir() {
			return fail("a file")
		}
		return nil
	case corev1.HostPathFile:
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return fail("a file")
		}
		return nil
	case corev1.HostPathSocket:
		if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeSocket == 0 {
			return fail("a socket")
		}
		return nil
	case corev1.HostPathCharDev:
		if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
			return fail("a character device")
		}
		return nil
	case corev1.HostPathBlockDev:
		if fi, err := os.Stat(p); err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			return fail("a block device")
		}
		return nil
	}
	return fmt.Errorf("hostPath type %q: %w", t, edged.ErrUnsupported)
}

// Teardown implements edged.Volumes: it unmounts the pod's tmpfs volumes and removes the pod
// directory. It refuses a pod directory that is a symlink or lies outside Root, and refuses
// to remove anything while a mount remains under it.
func (m *Manager) Teardown(ctx context.Context, podUID types.UID) error {
	pd, err := m.podDir(podUID)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(pd)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("teardown: %s is not a directory (a symlink?): refusing", pd)
	}
	kinds, err := os.ReadDir(filepath.Join(pd, "volumes"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, k := range kinds {
		if !k.IsDir() {
			continue
		}
		kd := filepath.Join(pd, "volumes", k.Name())
		vols, err := os.ReadDir(kd)
		if err != nil {
			return err
		}
		for _, v := range vols {
			if !v.IsDir() {
				continue
			}
			vd := filepath.Join(kd, v.Name())
			mounted, err := isMountPoint(vd)
			if err != nil {
				return err
			}
			if mounted {
				if err := syscall.Unmount(vd, 0); err != nil {
					return fmt.Errorf("teardown: unmount %s: %w", vd, err)
				}
				m.log.Debug("unmounted", "dir", vd)
			}
		}
	}
	// A mount left anywhere (a runtime's, say) would have its content removed: refuse.
	err = filepath.WalkDir(pd, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != pd {
			mounted, err := isMountPoint(p)
			if err != nil {
				return err
			}
			if mounted {
				return fmt.Errorf("teardown: %s is still a mount point: refusing to remove %s", p, pd)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return os.RemoveAll(pd)
}
