package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

func TestHostsFileCarriesThePodAndItsAliases(t *testing.T) {
	dir := t.TempDir()
	hostHosts := filepath.Join(dir, "host-hosts")
	if err := os.WriteFile(hostHosts, []byte("127.0.0.1 localhost\n10.0.0.1 gateway"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &worker{r: &Runner{cfg: Config{PodsDir: dir, HostsFile: hostHosts}}}
	pod := newPod("web", "c")
	pod.Spec.HostAliases = []corev1.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"db", "db.local"}}}
	c := &pod.Spec.Containers[0]

	m, err := w.hostsMount(pod, c, edged.Facts{PodIP: "10.88.0.7"})
	if err != nil || m == nil || m.ContainerPath != "/etc/hosts" {
		t.Fatalf("mount %+v, %v", m, err)
	}
	b, _ := os.ReadFile(m.HostPath)
	for _, want := range []string{"127.0.0.1\tlocalhost", "10.88.0.7\tweb", "10.1.2.3\tdb\tdb.local"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("hosts file lacks %q:\n%s", want, b)
		}
	}

	pod.Spec.HostNetwork = true
	m, err = w.hostsMount(pod, c, edged.Facts{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(m.HostPath)
	if !strings.HasPrefix(string(b), "127.0.0.1 localhost\n10.0.0.1 gateway\n") || !strings.Contains(string(b), "10.1.2.3\tdb") {
		t.Errorf("hostNetwork hosts file:\n%s", b)
	}

	c.VolumeMounts = []corev1.VolumeMount{{Name: "own", MountPath: "/etc/hosts"}}
	if m, err := w.hostsMount(pod, c, edged.Facts{}); m != nil || err != nil {
		t.Errorf("a container mounting its own /etc/hosts got %+v, %v", m, err)
	}
}
