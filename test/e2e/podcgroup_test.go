//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/test/e2e/framework"
)

var cgroupCloud = cloudAddrs{hub: "127.0.0.1:27500", bootstrap: "127.0.0.1:27502", admission: "127.0.0.1:27505", admin: "127.0.0.1:27506"}

const (
	cgroupNode = "cgroup-a"
	// cgroupRoot is set explicitly (it is the default) so the paths read below are certain.
	cgroupRoot = "/kubepods"
)

// TestEdgedPodCgroup checks the pod-level cgroup limits on the real runtime and cgroupfs: a
// Guaranteed pod's cgroup holds its summed CPU and memory limits, a Burstable pod without
// limits gets shares from its requests and no quota or memory limit, the containers' cgroups
// sit inside the pod's, and deleting the pods removes their cgroups.
func TestEdgedPodCgroup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	startCloud(t, dir, cgroupCloud)
	newEdge(t, dir, cgroupNode, cgroupCloud, "127.0.0.1:27550",
		"edged:\n  server: {address: 127.0.0.1:27553}\n  cgroupRoot: "+cgroupRoot+"\n  relistPeriod: 1s\nnode: {statusUpdateFrequency: 2s}\n")
	t.Cleanup(func() {
		_ = env.Kube.CoreV1().Nodes().Delete(context.Background(), cgroupNode, metav1.DeleteOptions{})
		_ = env.Kube.CoordinationV1().Leases("kube-node-lease").Delete(context.Background(), cgroupNode, metav1.DeleteOptions{})
		_ = env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), "autonomy.pods.skerry.io", metav1.DeleteOptions{})
	})
	waitNodeReady(t, cgroupNode)
	ns := "e2e-cgroup-" + fmt.Sprint(time.Now().UnixNano()%1_000_000)
	must[*corev1.Namespace](t)(env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	t.Cleanup(func() { _ = env.Kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	list := func(cpu, mem string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
	}
	pods := map[string]corev1.ResourceRequirements{
		"guaranteed": {Requests: list("250m", "64Mi"), Limits: list("250m", "64Mi")},
		"burstable":  {Requests: list("100m", "32Mi")},
	}
	uids := map[string]string{}
	for name, r := range pods {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
			NodeName:                      cgroupNode,
			AutomountServiceAccountToken:  ptr(false),
			TerminationGracePeriodSeconds: ptr(int64(2)),
			Containers:                    []corev1.Container{{Name: "main", Image: busyboxLocal, Command: []string{"sleep", "3600"}, Resources: r}},
		}}
		created, err := env.Kube.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids[name] = string(created.UID)
	}
	for name := range pods {
		framework.Eventually(t, 2*time.Minute, name+" running", func(ctx context.Context) (bool, error) {
			p, err := env.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return p.Status.Phase == corev1.PodRunning, fmt.Errorf("phase %s, containers %+v", p.Status.Phase, p.Status.ContainerStatuses)
		})
	}

	podDir := func(controller, name string) string {
		return filepath.Join("/sys/fs/cgroup", controller, cgroupRoot, "pod"+uids[name])
	}
	read := func(controller, name, file string) int64 {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(podDir(controller, name), file))
		if err != nil {
			t.Fatalf("%s pod cgroup: %v", name, err)
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatalf("%s %s: %v", name, file, err)
		}
		return v
	}
	// cgroup v1 reads an unlimited memory limit back as the largest page-aligned value.
	const unlimitedMemory = int64(1) << 62
	for _, c := range []struct {
		pod, controller, file string
		want                  int64
		atLeast               bool
	}{
		{"guaranteed", "cpu", "cpu.shares", 256, false},
		{"guaranteed", "cpu", "cpu.cfs_period_us", 100000, false},
		{"guaranteed", "cpu", "cpu.cfs_quota_us", 25000, false},
		{"guaranteed", "memory", "memory.limit_in_bytes", 64 << 20, false},
		{"burstable", "cpu", "cpu.shares", 102, false},
		{"burstable", "cpu", "cpu.cfs_quota_us", -1, false},
		{"burstable", "memory", "memory.limit_in_bytes", unlimitedMemory, true},
	} {
		got := read(c.controller, c.pod, c.file)
		if got != c.want && !(c.atLeast && got >= c.want) {
			t.Errorf("%s %s = %d, want %d", c.pod, c.file, got, c.want)
		}
	}
	// runc put the containers' cgroups (sandbox and main) inside the pod's.
	for name := range pods {
		ents, err := os.ReadDir(podDir("memory", name))
		if err != nil {
			t.Fatal(err)
		}
		var children int
		for _, e := range ents {
			if e.IsDir() {
				children++
			}
		}
		if children < 2 {
			t.Errorf("%s: %d container cgroups inside the pod cgroup, want the sandbox's and main's", name, children)
		}
	}

	for name := range pods {
		if err := env.Kube.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for name, uid := range uids {
		framework.Eventually(t, 2*time.Minute, name+" gone with its cgroups", func(ctx context.Context) (bool, error) {
			_, err := env.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if !apierrors.IsNotFound(err) {
				return false, fmt.Errorf("pod still there: %v", err)
			}
			m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", cgroupRoot, "pod"+uid))
			return len(m) == 0, fmt.Errorf("pod cgroups left: %v", m)
		})
	}
}
