package volumes

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skerry-io/skerry/edge/edged"
)

type fakeObjects struct {
	mu      sync.Mutex
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
	tokens  map[string]*edged.PodTokens
}

func newFake() *fakeObjects {
	return &fakeObjects{cms: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, tokens: map[string]*edged.PodTokens{}}
}

func (f *fakeObjects) ConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cm, ok := f.cms[ns+"/"+name]
	return cm, ok, nil
}

func (f *fakeObjects) Secret(_ context.Context, ns, name string) (*corev1.Secret, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.secrets[ns+"/"+name]
	return s, ok, nil
}

func (f *fakeObjects) PodTokens(_ context.Context, ns, name string) (*edged.PodTokens, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tokens[ns+"/"+name]
	return t, ok, nil
}

func (f *fakeObjects) setCM(name string, data map[string]string, bin map[string][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cms["ns/"+name] = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Data: data, BinaryData: bin}
}

func (f *fakeObjects) setSecret(name string, data map[string][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets["ns/"+name] = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Data: data}
}

func testPod(vols ...corev1.Volume) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "uid-1",
			Labels: map[string]string{"app": "web", "tier": "a\"b"}, Annotations: map[string]string{"note": "x\ny"}},
		Spec: corev1.PodSpec{
			NodeName: "node-1", ServiceAccountName: "sa",
			Volumes: vols,
			Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			}}},
		},
	}
}

var testFacts = edged.Facts{NodeName: "node-1", HostIP: "10.0.0.1", PodIP: "10.88.0.5", PodIPs: []string{"10.88.0.5", "fd00::5"}}

func newManager(t *testing.T, objs *fakeObjects) (*Manager, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "pods")
	m := New(Config{Root: root, Objects: objs, Allocatable: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")}})
	t.Cleanup(func() { _ = m.Teardown(context.Background(), "uid-1") })
	return m, root
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func canMount(t *testing.T) {
	t.Helper()
	d := t.TempDir()
	if err := syscall.Mount("tmpfs", d, "tmpfs", 0, ""); err != nil {
		t.Skipf("cannot mount tmpfs here: %v", err)
	}
	_ = syscall.Unmount(d, 0)
}

func TestEmptyDir(t *testing.T) {
	m, root := newManager(t, newFake())
	pod := testPod(corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2000)}
	if err := m.Setup(context.Background(), pod, testFacts); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "uid-1/volumes/kubernetes.io~empty-dir/scratch")
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSetgid == 0 {
		t.Errorf("mode %v, want 0777 with setgid", fi.Mode())
	}
	if gid := fi.Sys().(*syscall.Stat_t).Gid; gid != 2000 {
		t.Errorf("gid %d, want 2000", gid)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Idempotent: a second Setup keeps the content.
	if err := m.Setup(context.Background(), pod, testFacts); err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(dir, "f")) != "x" {
		t.Error("content lost")
	}
	mounts, err := m.Mounts(pod, &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/s"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 1 || mounts[0].HostPath != dir || mounts[0].ContainerPath != "/s" || mounts[0].Readonly {
		t.Errorf("mounts %v", mounts)
	}
}

func TestEmptyDirMemoryAndTeardown(t *testing.T) {
	canMount(t)
	m, root := newManager(t, newFake())
	pod := testPod(corev1.Volume{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
		Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("1Mi"))}}})
	ctx := context.Background()
	if err := m.Setup(ctx, pod, testFacts); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "uid-1/volumes/kubernetes.io~empty-dir/mem")
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != 0x01021994 {
		t.Fatalf("not tmpfs: %x", st.Type)
	}
	if size := int64(st.Blocks) * int64(st.Bsize); size != 1<<20 {
		t.Errorf("tmpfs size %d, want 1Mi", size)
	}
	if err := m.Setup(ctx, pod, testFacts); err != nil { // no second mount
		t.Fatal(err)
	}
	if err := m.Teardown(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "uid-1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod dir still there: %v", err)
	}
	if mi := readFile(t, "/proc/self/mountinfo"); strings.Contains(mi, dir) {
		t.Error("tmpfs still mounted")
	}
	if err := m.Teardown(ctx, pod.UID); err != nil {
		t.Errorf("second teardown: %v", err)
	}
}

func TestTeardownRefusesSymlink(t *testing.T) {
	m, root := newManager(t, newFake())
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(context.Background(), "evil"); err == nil {
		t.Error("teardown of a symlinked pod dir succeeded")
	}
	if err := m.Teardown(context.Background(), "../x"); err == nil {
		t.Error("teardown of ../x succeeded")
	}
	// A symlink inside the pod dir is removed, not followed.
	if err := os.MkdirAll(filepath.Join(root, "p2/volumes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "p2/volumes/link")); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(context.Background(), "p2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("teardown followed a symlink: %v", err)
	}
}

func TestHostPathTypes(t *testing.T) {
	m, _ := newManager(t, newFake())
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(base, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cases := []struct {
		path    string
		typ     corev1.HostPathType
		wantErr bool
	}{
		{filepath.Join(base, "nothing"), corev1.HostPathUnset, false},
		{filepath.Join(base, "newdir/sub"), corev1.HostPathDirectoryOrCreate, false},
		{file, corev1.HostPathDirectoryOrCreate, true},
		{base, corev1.HostPathDirectory, false},
		{filepath.Join(base, "missing"), corev1.HostPathDirectory, true},
		{file, corev1.HostPathDirectory, true},
		{filepath.Join(base, "newfile"), corev1.HostPathFileOrCreate, false},
		{filepath.Join(base, "noparent/f"), corev1.HostPathFileOrCreate, true},
		{base, corev1.HostPathFileOrCreate, true},
		{file, corev1.HostPathFile, false},
		{base, corev1.HostPathFile, true},
		{sock, corev1.HostPathSocket, false},
		{file, corev1.HostPathSocket, true},
		{"/dev/null", corev1.HostPathCharDev, false},
		{file, corev1.HostPathCharDev, true},
		{"/dev/null", corev1.HostPathBlockDev, true},
	}
	for _, tc := range cases {
		pod := testPod(corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: tc.path, Type: ptr.To(tc.typ)}}})
		err := m.Setup(context.Background(), pod, testFacts)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s %q: err %v, wantErr %v", tc.path, tc.typ, err, tc.wantErr)
			continue
		}
		if err != nil && (!strings.Contains(err.Error(), `volume "h"`) || !strings.Contains(err.Error(), string(tc.typ))) {
			t.Errorf("error does not name the volume and type: %v", err)
		}
	}
	if fi, err := os.Stat(filepath.Join(base, "newdir/sub")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("DirectoryOrCreate: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(base, "newfile")); err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
		t.Errorf("FileOrCreate: %v %v", fi, err)
	}
	pod := testPod(corev1.Volume{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: base}}})
	mounts, err := m.Mounts(pod, &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "h", MountPath: "/h", ReadOnly: true}}})
	if err != nil || mounts[0].HostPath != base || !mounts[0].Readonly {
		t.Errorf("mounts %v %v", mounts, err)
	}
}

func TestUnsupported(t *testing.T) {
	m, _ := newManager(t, newFake())
	cases := []struct {
		src   corev1.VolumeSource
		field string
	}{
		{corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "x"}}, "spec.volumes[1].persistentVolumeClaim"},
		{corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "x"}}, "spec.volumes[1].csi"},
		{corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}, "spec.volumes[1].ephemeral"},
		{corev1.VolumeSource{ISCSI: &corev1.ISCSIVolumeSource{}}, "spec.volumes[1].iscsi"},
		{corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{}}, "spec.volumes[1].nfs"},
		{corev1.VolumeSource{GitRepo: &corev1.GitRepoVolumeSource{}}, "spec.volumes[1].gitRepo"},
		{corev1.VolumeSource{Image: &corev1.ImageVolumeSource{}}, "spec.volumes[1].image"},
		{corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumHugePages}}, "spec.volumes[1].emptyDir.medium"},
		{corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{}, {ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{}}}}}, "spec.volumes[1].projected.sources[1].clusterTrustBundle"},
		{corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{PodCertificate: &corev1.PodCertificateProjection{}}}}}, "spec.volumes[1].projected.sources[0].podCertificate"},
	}
	for _, tc := range cases {
		pod := testPod(corev1.Volume{Name: "ok", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}, corev1.Volume{Name: "bad", VolumeSource: tc.src})
		err := m.Setup(context.Background(), pod, testFacts)
		if !errors.Is(err, edged.ErrUnsupported) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("want ErrUnsupported naming %s, got %v", tc.field, err)
		}
		_, err = m.Mounts(pod, &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "bad", MountPath: "/b"}}})
		if tc.src.EmptyDir == nil && tc.src.Projected == nil && (!errors.Is(err, edged.ErrUnsupported) || !strings.Contains(err.Error(), tc.field)) {
			t.Errorf("Mounts: want ErrUnsupported naming %s, got %v", tc.field, err)
		}
	}
}

func TestConfigMapVolume(t *testing.T) {
	objs := newFake()
	objs.setCM("cfg", map[string]string{"a": "A", "b.conf": "B"}, map[string][]byte{"bin": {0, 1, 2}})
	m, root := newManager(t, objs)
	pod := testPod(
		corev1.Volume{Name: "all", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		corev1.Volume{Name: "items", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, DefaultMode: ptr.To[int32](0o600),
			Items: []corev1.KeyToPath{{Key: "a", Path: "dir/x"}, {Key: "bin", Path: "y", Mode: ptr.To[int32](0o400)}}}}},
		corev1.Volume{Name: "opt", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: ptr.To(true)}}},
		corev1.Volume{Name: "optkey", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Optional: ptr.To(true),
			Items: []corev1.KeyToPath{{Key: "nokey", Path: "n"}, {Key: "a", Path: "a"}}}}},
	)
	if err := m.Setup(context.Background(), pod, testFacts); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(root, "uid-1/volumes/kubernetes.io~configmap")
	all := filepath.Join(base, "all")
	if readFile(t, filepath.Join(all, "a")) != "A" || readFile(t, filepath.Join(all, "b.conf")) != "B" || readFile(t, filepath.Join(all, "bin")) != "\x00\x01\x02" {
		t.Error("content")
	}
	if got := mode(t, filepath.Join(all, "a")).Perm(); got != 0o644 {
		t.Errorf("default mode %o", got)
	}
	if target, _ := os.Readlink(filepath.Join(all, "a")); target != "..data/a" {
		t.Errorf("a -> %q", target)
	}
	if target, _ := os.Readlink(filepath.Join(all, "..data")); !strings.HasPrefix(target, "..20") {
		t.Errorf("..data -> %q", target)
	}
	items := filepath.Join(base, "items")
	if readFile(t, filepath.Join(items, "dir/x")) != "A" || mode(t, filepath.Join(items, "dir/x")).Perm() != 0o600 {
		t.Error("items dir/x")
	}
	if mode(t, filepath.Join(items, "y")).Perm() != 0o400 {
		t.Error("item mode")
	}
	if target, _ := os.Readlink(filepath.Join(items, "dir")); target != "..data/dir" {
		t.Errorf("dir -> %q", target)
	}
	if _, err := os.Stat(filepath.Join(items, "a")); err == nil {
		t.Error("key not in items projected")
	}
	if ents, _ := os.ReadDir(filepath.Join(base, "opt")); len(ents) != 2 { // ..data and the timestamped dir
		t.Errorf("optional missing configmap: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(base, "optkey/n")); err == nil {
		t.Error("optional missing key written")
	}
	if readFile(t, filepath.Join(base, "optkey/a")) != "A" {
		t.Error("optkey/a")
	}
	mounts, err := m.Mounts(pod, &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "all", MountPath: "/etc/cfg"}}})
	if err != nil || !mounts[0].Readonly || mounts[0].HostPath != all {
		t.Errorf("configMap mount must be read-only: %v %v", mounts, err)
	}

	// Missing non-optional object and key: ErrNotReady naming them.
	for _, v := range []corev1.Volume{
		{Name: "x", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}}},
		{Name: "x", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "gone", Path: "g"}}}}},
		{Name: "x", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "gone"}}},
	} {
		err := m.Setup(context.Background(), testPod(v), testFacts)
		if !errors.Is(err, edged.ErrNotReady) || !strings.Contains(err.Error(), "gone") {
			t.Errorf("want ErrNotReady naming gone: %v", err)
		}
	}
}

func TestPathTraversalRefused(t *testing.T) {
	objs := newFake()
	objs.setCM("cfg", map[string]string{"a": "A"}, nil)
	m, root := newManager(t, objs)
	for _, p := range []string{"../x", "a/../../x", "/etc/passwd", "..hidden", "", "a/..", "."} {
		pod := testPod(corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "a", Path: p}}}}})
		err := m.Setup(context.Background(), pod, testFacts)
		if err == nil || !strings.Contains(err.Error(), "invalid path") {
			t.Errorf("path %q: err %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "uid-1/volumes/x")); err == nil {
		t.Error("escaped")
	}
}

func TestSecretVolumeFsGroup(t *testing.T) {
	canMount(t)
	objs := newFake()
	objs.setSecret("s", map[string][]byte{"pw": []byte("hunter2")})
	m, root := newManager(t, objs)
	pod := testPod(corev1.Volume{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: "s", DefaultMode: ptr.To[int32](0o400)}}})
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr.To[int64](3000)}
	if err := m.Setup(context.Background(), pod, testFacts); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(root, "uid-1/volumes/kubernetes.io~secret/sec/pw")
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o440 || fi.Sys().(*syscall.Stat_t).Gid != 3000 {
		t.Errorf("mode %v gid %d, want 0440 gid 3000", fi.Mode(), fi.Sys().(*syscall.Stat_t).Gid)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(f), &st); err != nil || st.Type != 0x01021994 {
		t.Errorf("secret volume not on tmpfs: %x %v", st.Type, err)
	}
	if err := m.Teardown(context.Background(), pod.UID); err != nil {
		t.Fatal(err)
	}
}

func TestDownwardAPIVolume(t *testing.T) {
	m, root := newManager(t, newFake())
	item := func(p, f string) corev1.DownwardAPIVolumeFile {
		return corev1.DownwardAPIVolumeFile{Path: p, FieldRef: &corev1.ObjectFieldSelector{FieldPath: f}}
	}
	res := func(p, r, div string) corev1.DownwardAPIVolumeFile {
		s := &corev1.ResourceFieldSelector{ContainerName: "c", Resource: r}
		if div != "" {
			s.Divisor = resource.MustParse(div)
		}
		return corev1.DownwardAPIVolumeFile{Path: p, ResourceFieldRef: s}
	}
	pod := testPod(corev1.Volume{Name: "d", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
		item("name", "metadata.name"), item("namespace", "metadata.namespace"), item("uid", "metadata.uid"),
		item("labels", "metadata.labels"), item("annotations", "metadata.annotations"), item("app", "metadata.labels['app']"),
		item("node", "spec.nodeName"), item("sa", "spec.serviceAccountName"), item("podip", "status.podIP"), item("hostip", "status.hostIP"),
		res("cpu_limit", "limits.cpu", "1m"), res("cpu_limit_cores", "limits.cpu", ""), res("mem_limit", "limits.memory", "1Mi"),
		res("mem_request", "requests.memory", ""), res("eph_limit", "limits.ephemeral-storage", "1Gi"),
	}}}})
	pod.Spec.Volumes[0].DownwardAPI.Items[0].Mode = ptr.To[int32](0o600)
	if err := m.Setup(context.Background(), pod, testFacts); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "uid-1/volumes/kubernetes.io~downward-api/d")
	want := map[string]string{
		"name": "web", "namespace": "ns", "uid": "uid-1",
		"labels":      "app=\"web\"\ntier=\"a\\\"b\"",
		"annotations": "note=\"x\\ny\"",
		"app":         "web", "node": "node-1", "sa": "sa", "podip": "10.88.0.5", "hostip": "10.0.0.1",
		"cpu_limit": "500", "cpu_limit_cores": "1", "mem_limit": "64", "mem_request": "33554432",
	}
	for f, w := range want {
		if got := readFile(t, filepath.Join(dir, f)); got != w {
			t.Errorf("%s = %q, want %q", f, got, w)
		}
	}
	if readFile(t, filepath.Join(dir, "eph_limit")) == "0" {
		t.Error("ephemeral-storage limit did not fall back to the node's")
	}
	if mode(t, filepath.Join(dir, "name")).Perm() != 0o600 || mode(t, filepath.Join(dir, "uid")).Perm() != 0o644 {
		t.Error("modes")
	}
	// Unset memory limit falls back to node allocatable.
	pod.Spec.Containers[0].Resources.Limits = nil
	if err := m.Setup(context.Background(), pod, testFacts); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "mem_limit")); got != "8192" {
		t.Errorf("mem_limit fallback %q, want 8192", got)
	}
	if got := readFile(t, filepath.Join(dir, "cpu_limit_cores")); got != "4" {
		t.Errorf("cpu fallback %q, want 4", got)
	}
}

func TestHostAllocatableFallback(t *testing.T) {
	m := New(Config{Root: t.TempDir(), Objects: newFake()})
	a := m.allocatable()
	if a.Cpu().Value() < 1 || a.Memory().Value() < 1<<20 || a.StorageEphemeral().Value() < 1<<20 {
		t.Errorf("host allocatable %v", a)
	}
}

func tokens(uid string, toks ...edged.Token) *edged.PodTokens {
	meta, _ := json.Marshal(map[string]string{"namespace": "ns", "name": "web", "uid": uid})
	return &edged.PodTokens{APIVersion: "edge.skerry.io/v1", Kind: "PodTokens", Metadata: meta, ServiceAccountName: "sa", Tokens: toks}
}

func TestProjectedVolume(t *testing.T) {
	canMount(t)
	objs := newFake()
	objs.setCM("ca", map[string]string{"ca.crt": "CERT"}, nil)
	objs.setSecret("s", map[string][]byte{"k": []byte("S")})
	m, root := newManager(t, objs)
	pod := testPod(corev1.Volume{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](0o644),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "vault-token", Audience: "vault"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "ca"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: ptr.To(true)}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
		}}}})
	ctx := context.Background()
	// No tokens yet: not ready.
	if err := m.Setup(ctx, pod, testFacts); !errors.Is(err, edged.ErrNotReady) {
		t.Fatalf("want ErrNotReady, got %v", err)
	}
	// Tokens of another pod of the same name: not ready.
	objs.tokens["ns/web"] = tokens("other-uid", edged.Token{ExpirationSeconds: 3607, Token: "T"})
	if err := m.Setup(ctx, pod, testFacts); !errors.Is(err, edged.ErrNotReady) {
		t.Fatalf("want ErrNotReady for another uid, got %v", err)
	}
	// The vault token (expiration defaulting to 3600) is missing.
	objs.tokens["ns/web"] = tokens("uid-1",
		edged.Token{ExpirationSeconds: 3600, Token: "WRONG"},
		edged.Token{Audience: "vault", ExpirationSeconds: 3607, Token: "WRONG"},
		edged.Token{ExpirationSeconds: 3607, Token: "API"})
	if err := m.Setup(ctx, pod, testFacts); !errors.Is(err, edged.ErrNotReady) || !strings.Contains(err.Error(), `"vault"`) {
		t.Fatalf("want ErrNotReady naming the audience, got %v", err)
	}
	objs.tokens["ns/web"].Tokens = append(objs.tokens["ns/web"].Tokens, edged.Token{Audience: "vault", ExpirationSeconds: 3600, Token: "VAULT"})
	if err := m.Setup(ctx, pod, testFacts); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "uid-1/volumes/kubernetes.io~projected/kube-api-access")
	for f, w := range map[string]string{"token": "API", "vault-token": "VAULT", "ca.crt": "CERT", "k": "S", "namespace": "ns"} {
		if got := readFile(t, filepath.Join(dir, f)); got != w {
			t.Errorf("%s = %q, want %q", f, got, w)
		}
	}
	if mode(t, filepath.Join(dir, "token")).Perm() != 0o644 {
		t.Error("token mode without fsGroup/runAsUser")
	}
	// With runAsUser and fsGroup: token owned by the user, 0600 plus fsGroup's group read.
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1001), FSGroup: ptr.To[int64](2002)}
	if err := m.Setup(ctx, pod, testFacts); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o640 || st.Uid != 1001 || st.Gid != 2002 {
		t.Errorf("token mode %v uid %d gid %d", fi.Mode(), st.Uid, st.Gid)
	}
}

func dataDir(t *testing.T, dir string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	return target
}

func TestAtomicUpdate(t *testing.T) {
	objs := newFake()
	objs.setCM("cfg", map[string]string{"a": "1", "b": "1", "old": "x"}, nil)
	m, root := newManager(t, objs)
	pod := testPod(corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}})
	ctx := context.Background()
	if err := m.Setup(ctx, pod, testFacts); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "uid-1/volumes/kubernetes.io~configmap/v")
	first := dataDir(t, dir)
	fi1, _ := os.Stat(filepath.Join(dir, first, "a"))

	// Unchanged: nothing written.
	if err := m.Setup(ctx, pod, testFacts); err != nil {
		t.Fatal(err)
	}
	if got := dataDir(t, dir); got != first {
		t.Errorf("unchanged content made a new data dir %s", got)
	}
	fi2, _ := os.Stat(filepath.Join(dir, first, "a"))
	if !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Error("unchanged file rewritten")
	}

	// Update: ..data swapped, old dir and stale links gone.
	objs.setCM("cfg", map[string]string{"a": "2", "b": "2", "new": "n"}, nil)
	if err := m.Setup(ctx, pod, testFacts); err != nil {
		t.Fatal(err)
	}
	second := dataDir(t, dir)
	if second == first {
		t.Fatal("..data not swapped")
	}
	if _, err := os.Lstat(filepath.Join(dir, first)); !errors.Is(err, os.ErrNotExist) {
		t.Error("old data dir left")
	}
	if _, err := os.Lstat(filepath.Join(dir, "old")); !errors.Is(err, os.ErrNotExist) {
		t.Error("stale link left")
	}
	if readFile(t, filepath.Join(dir, "a")) != "2" || readFile(t, filepath.Join(dir, "new")) != "n" {
		t.Error("new content")
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 5 { // ..<ts>, ..data, a, b, new
		t.Errorf("entries %v", names)
	}
	// A mode change alone is an update too.
	pod.Spec.Volumes[0].ConfigMap.DefaultMode = ptr.To[int32](0o600)
	if err := m.Setup(ctx, pod, testFacts); err != nil {
		t.Fatal(err)
	}
	if dataDir(t, dir) == second || mode(t, filepath.Join(dir, "a")).Perm() != 0o600 {
		t.Error("mode change not applied")
	}
}

// A reader never sees a mix of two versions, nor a partial file.
func TestAtomicUpdateConcurrentReader(t *testing.T) {
	objs := newFake()
	content := func(v int) string { return strings.Repeat(string(rune('a'+v%26)), 64<<10) }
	set := func(v int) {
		objs.setCM("cfg", map[string]string{"x": content(v), "y": content(v)}, nil)
	}
	set(0)
	m, root := newManager(t, objs)
	pod := testPod(corev1.Volume{Name: "v", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}})
	ctx := context.Background()
	if err := m.Setup(ctx, pod, testFacts); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "uid-1/volumes/kubernetes.io~configmap/v")
	stop := make(chan struct{})
	var reads, bad atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Resolve ..data once, as a consumer that wants a consistent set does.
			ts, err := os.Readlink(filepath.Join(dir, "..data"))
			if err != nil {
				bad.Add(1)
				continue
			}
			x, errx := os.ReadFile(filepath.Join(dir, ts, "x"))
			y, erry := os.ReadFile(filepath.Join(dir, ts, "y"))
			if errors.Is(errx, os.ErrNotExist) || errors.Is(erry, os.ErrNotExist) {
				continue // that version was replaced meanwhile
			}
			if errx != nil || erry != nil || string(x) != string(y) || len(x) != 64<<10 || strings.Count(string(x), string(x[0])) != len(x) {
				bad.Add(1)
			}
			// And through the user-visible link: always one whole version.
			if z, err := os.ReadFile(filepath.Join(dir, "x")); err == nil && (len(z) != 64<<10 || strings.Count(string(z), string(z[0])) != len(z)) {
				bad.Add(1)
			}
			reads.Add(1)
		}
	}()
	deadline := time.Now().Add(time.Second)
	for v := 1; time.Now().Before(deadline) || reads.Load() < 50; v++ {
		set(v)
		if err := m.Setup(ctx, pod, testFacts); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d inconsistent reads of %d", bad.Load(), reads.Load())
	}
}

func TestSubPath(t *testing.T) {
	objs := newFake()
	objs.setCM("cfg", map[string]string{"app.conf": "C"}, nil)
	m, root := newManager(t, objs)
	outside := t.TempDir()
	pod := testPod(
		corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
	)
	ctx := context.Background()
	if err := m.Setup(ctx, pod, testFacts); err != nil {
		t.Fatal(err)
	}
	ed := filepath.Join(root, "uid-1/volumes/kubernetes.io~empty-dir/data")
	if err := os.Symlink(outside, filepath.Join(ed, "escape")); err != nil {
		t.Fatal(err)
	}
	c := &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{
		{Name: "data", MountPath: "/a", SubPath: "new/dir"},
		{Name: "cfg", MountPath: "/etc/app.conf", SubPath: "app.conf"},
	}}
	mounts, err := m.Mounts(pod, c)
	if err != nil {
		t.Fatal(err)
	}
	realED, _ := filepath.EvalSymlinks(ed)
	if mounts[0].HostPath != filepath.Join(realED, "new/dir") || mounts[0].Readonly {
		t.Errorf("subPath mount %v", mounts[0])
	}
	if fi, err := os.Stat(filepath.Join(ed, "new/dir")); err != nil || !fi.IsDir() {
		t.Error("subPath dir not created")
	}
	if !mounts[1].Readonly || readFile(t, mounts[1].HostPath) != "C" {
		t.Errorf("configMap subPath mount %v", mounts[1])
	}
	for _, sub := range []string{"escape", "escape/x", "../x", "a/../../x", "/etc"} {
		c := &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/a", SubPath: sub}}}
		if _, err := m.Mounts(pod, c); err == nil {
			t.Errorf("subPath %q accepted", sub)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "x")); err == nil {
		t.Error("created outside the volume")
	}
	// A missing subPath in an API data volume is not created.
	if _, err := m.Mounts(pod, &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "cfg", MountPath: "/x", SubPath: "nokey"}}}); !errors.Is(err, edged.ErrNotReady) {
		t.Errorf("missing configMap subPath: %v", err)
	}
	// Unknown volume.
	if _, err := m.Mounts(pod, &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "nope", MountPath: "/x"}}}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown volume: %v", err)
	}
	// subPathExpr from the container's env.
	c = &corev1.Container{Name: "c",
		Env:          []corev1.EnvVar{{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/logs", SubPathExpr: "logs/$(POD)"}}}
	mounts, err = m.Mounts(pod, c)
	if err != nil || mounts[0].HostPath != filepath.Join(realED, "logs/web") {
		t.Errorf("subPathExpr: %v %v", mounts, err)
	}
	c.VolumeMounts[0].SubPathExpr = "$(NOPE)"
	if _, err := m.Mounts(pod, c); err == nil {
		t.Error("subPathExpr with an unknown variable accepted")
	}
	// Propagation and recursiveReadOnly.
	c = &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/p", MountPropagation: ptr.To(corev1.MountPropagationHostToContainer)}}}
	if mounts, err := m.Mounts(pod, c); err != nil || mounts[0].Propagation.String() != "PROPAGATION_HOST_TO_CONTAINER" {
		t.Errorf("propagation: %v %v", mounts, err)
	}
	c.VolumeMounts[0].RecursiveReadOnly = ptr.To(corev1.RecursiveReadOnlyEnabled)
	if _, err := m.Mounts(pod, c); !errors.Is(err, edged.ErrUnsupported) {
		t.Errorf("recursiveReadOnly: %v", err)
	}
}

func TestValidatePathProperty(t *testing.T) {
	for _, p := range []string{"a", "a/b", "a..b", ".a", "a/.b/c", "..", "..a/b"} {
		err := validatePath(p)
		ok := err == nil
		want := p != ".." && p != "..a/b"
		if ok != want {
			t.Errorf("validatePath(%q) = %v", p, err)
		}
	}
}

func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"a", "../a", "a/../../b", "/abs", "..data", "a/./b", "a//b", "..", "."} {
		f.Add(s)
	}
	root := "/volume"
	f.Fuzz(func(t *testing.T, p string) {
		if validatePath(p) != nil {
			return
		}
		full := filepath.Join(root, p)
		if !within(root, full) || full == root {
			t.Fatalf("%q accepted but resolves to %s", p, full)
		}
		rel, _ := filepath.Rel(root, full)
		if strings.HasPrefix(strings.Split(rel, "/")[0], "..") {
			t.Fatalf("%q accepted but starts with '..' (%s)", p, rel)
		}
	})
}
