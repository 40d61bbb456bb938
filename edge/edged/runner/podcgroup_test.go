package runner

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/pkg/wire"
)

// res builds requirements from "cpu=250m,memory=64Mi" strings ("" for none).
func res(requests, limits string) corev1.ResourceRequirements {
	list := func(s string) corev1.ResourceList {
		if s == "" {
			return nil
		}
		l := corev1.ResourceList{}
		for _, kv := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[corev1.ResourceName(k)] = resource.MustParse(v)
		}
		return l
	}
	return corev1.ResourceRequirements{Requests: list(requests), Limits: list(limits)}
}

func TestPodCgroupLimits(t *testing.T) {
	const mi = 1 << 20
	ctr := func(name string, r corev1.ResourceRequirements) corev1.Container {
		return corev1.Container{Name: name, Resources: r}
	}
	for _, tc := range []struct {
		name       string
		init, apps []corev1.Container
		overhead   string
		want       podCgroupLimits
	}{
		{
			name: "guaranteed: sums of both containers",
			apps: []corev1.Container{
				ctr("a", res("cpu=250m,memory=64Mi", "cpu=250m,memory=64Mi")),
				ctr("b", res("cpu=500m,memory=32Mi", "cpu=500m,memory=32Mi")),
			},
			want: podCgroupLimits{cpuShares: 768, cpuQuota: 75000, memory: 96 * mi},
		},
		{
			name: "guaranteed by limits alone: requests default to limits",
			apps: []corev1.Container{ctr("a", res("", "cpu=1,memory=1Gi"))},
			want: podCgroupLimits{cpuShares: 1024, cpuQuota: 100000, memory: 1024 * mi},
		},
		{
			name: "burstable, every container limited",
			apps: []corev1.Container{
				ctr("a", res("cpu=100m,memory=16Mi", "cpu=200m,memory=32Mi")),
				ctr("b", res("cpu=100m", "cpu=300m,memory=32Mi")),
			},
			want: podCgroupLimits{cpuShares: 204, cpuQuota: 50000, memory: 64 * mi},
		},
		{
			name: "burstable, requests only: unlimited",
			apps: []corev1.Container{ctr("a", res("cpu=250m,memory=64Mi", ""))},
			want: podCgroupLimits{cpuShares: 256, cpuQuota: unlimited, memory: unlimited},
		},
		{
			name: "burstable, one container without a memory limit",
			apps: []corev1.Container{
				ctr("a", res("", "cpu=200m,memory=32Mi")),
				ctr("b", res("", "cpu=300m")),
			},
			want: podCgroupLimits{cpuShares: 512, cpuQuota: 50000, memory: unlimited},
		},
		{
			name: "burstable, an init container without a CPU limit",
			init: []corev1.Container{ctr("i", res("memory=8Mi", "memory=8Mi"))},
			apps: []corev1.Container{ctr("a", res("", "cpu=200m,memory=32Mi"))},
			want: podCgroupLimits{cpuShares: 204, cpuQuota: unlimited, memory: 32 * mi},
		},
		{
			name: "best effort",
			apps: []corev1.Container{ctr("a", res("", "")), ctr("b", res("", ""))},
			want: podCgroupLimits{cpuShares: 2, cpuQuota: unlimited, memory: unlimited},
		},
		{
			name: "an init container larger than the apps' sum",
			init: []corev1.Container{
				ctr("small", res("", "cpu=100m,memory=8Mi")),
				ctr("big", res("", "cpu=2,memory=512Mi")),
			},
			apps: []corev1.Container{
				ctr("a", res("", "cpu=500m,memory=64Mi")),
				ctr("b", res("", "cpu=500m,memory=64Mi")),
			},
			want: podCgroupLimits{cpuShares: 2048, cpuQuota: 200000, memory: 512 * mi},
		},
		{
			name: "init containers smaller than the apps' sum",
			init: []corev1.Container{ctr("i", res("", "cpu=600m,memory=100Mi"))},
			apps: []corev1.Container{
				ctr("a", res("", "cpu=500m,memory=64Mi")),
				ctr("b", res("", "cpu=500m,memory=64Mi")),
			},
			want: podCgroupLimits{cpuShares: 1024, cpuQuota: 100000, memory: 128 * mi},
		},
		{
			name:     "overhead, guaranteed",
			apps:     []corev1.Container{ctr("a", res("", "cpu=250m,memory=64Mi"))},
			overhead: "cpu=250m,memory=16Mi",
			want:     podCgroupLimits{cpuShares: 512, cpuQuota: 50000, memory: 80 * mi},
		},
		{
			name:     "overhead on requests only when there are no limits",
			apps:     []corev1.Container{ctr("a", res("cpu=250m", ""))},
			overhead: "cpu=250m,memory=16Mi",
			want:     podCgroupLimits{cpuShares: 512, cpuQuota: unlimited, memory: unlimited},
		},
		{
			name: "tiny CPU limit: the kernel's minimum quota and shares",
			apps: []corev1.Container{ctr("a", res("", "cpu=1m,memory=4Mi"))},
			want: podCgroupLimits{cpuShares: 2, cpuQuota: minCFSQuota, memory: 4 * mi},
		},
		{
			name: "huge values saturate",
			apps: []corev1.Container{ctr("a", res("", "cpu=1e30,memory=1e30"))},
			want: podCgroupLimits{cpuShares: 262144, cpuQuota: maxMilliCPU * cfsPeriod / 1000, memory: math.MaxInt64},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{InitContainers: tc.init, Containers: tc.apps}}
			if tc.overhead != "" {
				pod.Spec.Overhead = res(tc.overhead, "").Requests
			}
			if got := podCgroupLimitsFor(pod); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// FuzzPodCgroupLimits feeds quantities from outside (the pod spec) through the computation:
// no panic, and only values the kernel can mean.
func FuzzPodCgroupLimits(f *testing.F) {
	f.Add("250m", "500m", "64Mi", "1", "1Gi")
	f.Add("0", "", "", "", "")
	f.Add("1e30", "9223372036854775807", "1e30", "1Ei", "-5")
	f.Add("1m", "1m", "1", "0.001", "1k")
	f.Fuzz(func(t *testing.T, cpuReq, cpuLim, memLim, initCPU, initMem string) {
		l := corev1.ResourceList{}
		set := func(list corev1.ResourceList, name corev1.ResourceName, s string) {
			if q, err := resource.ParseQuantity(s); err == nil {
				list[name] = q
			}
		}
		req := corev1.ResourceList{}
		set(req, corev1.ResourceCPU, cpuReq)
		set(l, corev1.ResourceCPU, cpuLim)
		set(l, corev1.ResourceMemory, memLim)
		il := corev1.ResourceList{}
		set(il, corev1.ResourceCPU, initCPU)
		set(il, corev1.ResourceMemory, initMem)
		pod := &corev1.Pod{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "i", Resources: corev1.ResourceRequirements{Limits: il}}},
			Containers:     []corev1.Container{{Name: "a", Resources: corev1.ResourceRequirements{Requests: req, Limits: l}}},
		}}
		got := podCgroupLimitsFor(pod)
		if got.cpuShares < 2 || got.cpuShares > 262144 {
			t.Errorf("cpu.shares %d", got.cpuShares)
		}
		if got.cpuQuota != unlimited && got.cpuQuota < minCFSQuota {
			t.Errorf("cpu.cfs_quota_us %d", got.cpuQuota)
		}
		if got.memory != unlimited && got.memory <= 0 {
			t.Errorf("memory.limit_in_bytes %d", got.memory)
		}
	})
}

func readCgroupFile(t *testing.T, path ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(path...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A started pod's cgroup holds its limits (written before the sandbox); a cgroup left from
// before (edgecore restarted) is brought to the same values; teardown removes both.
func TestPodCgroupWrittenBeforeSandboxAndRemoved(t *testing.T) {
	h := newHarness(t)
	g := newPod("guaranteed", "a", "b")
	g.Spec.Containers[0].Resources = res("cpu=250m,memory=64Mi", "cpu=250m,memory=64Mi")
	g.Spec.Containers[1].Resources = res("cpu=250m,memory=64Mi", "cpu=250m,memory=64Mi")
	b := newPod("burstable", "a")
	b.Spec.Containers[0].Resources = res("cpu=100m,memory=32Mi", "")
	// The burstable pod's cgroup exists with other values and a container's cgroup in it.
	stale := filepath.Join(h.cgroups, "cpu", "kubepods", "poduid-burstable")
	if err := os.MkdirAll(filepath.Join(stale, "ctr1"), 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"cpu.shares": "1024", "cpu.cfs_quota_us": "5000", "ctr1/cpu.shares": "102"} {
		if err := os.WriteFile(filepath.Join(stale, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	h.apply(wire.OpInsert, g)
	h.apply(wire.OpInsert, b)
	waitFor(t, "both pods started", func() bool {
		return h.rt.count("StartContainer b/0") == 1 && h.rt.count("StartContainer a/0") == 2
	})

	for _, c := range []struct{ pod, ctl, file, want string }{
		{"guaranteed", "cpu", "cpu.shares", "512"},
		{"guaranteed", "cpu", "cpu.cfs_period_us", "100000"},
		{"guaranteed", "cpu", "cpu.cfs_quota_us", "50000"},
		{"guaranteed", "memory", "memory.limit_in_bytes", "134217728"},
		{"burstable", "cpu", "cpu.shares", "102"},
		{"burstable", "cpu", "cpu.cfs_quota_us", "-1"},
		{"burstable", "memory", "memory.limit_in_bytes", "-1"},
	} {
		if got := readCgroupFile(t, h.cgroups, c.ctl, "kubepods", "poduid-"+c.pod, c.file); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.pod, c.file, got, c.want)
		}
	}
	if fi, err := os.Stat(filepath.Join(h.cgroups, "cpuacct", "kubepods", "poduid-guaranteed")); err != nil || !fi.IsDir() {
		t.Errorf("cpuacct pod cgroup: %v", err)
	}

	for _, p := range []*corev1.Pod{g, b} {
		del := p.DeepCopy()
		now := metav1.NewTime(h.clock.Now())
		zero := int64(0)
		del.DeletionTimestamp, del.DeletionGracePeriodSeconds = &now, &zero
		h.apply(wire.OpUpdate, del)
		waitFor(t, "PodDeleted "+p.Name, func() bool { return h.status.wasDeleted(p.UID) })
	}
	if m, _ := filepath.Glob(filepath.Join(h.cgroups, "*", "kubepods", "pod*")); len(m) != 0 {
		t.Errorf("pod cgroups left: %v", m)
	}
	if _, err := os.Stat(filepath.Join(h.cgroups, "cpu", "kubepods")); err != nil {
		t.Errorf("cgroup root removed: %v", err)
	}
}

// A pod cgroup that cannot be made fails the sandbox (no pod runs without its limits) with an
// event naming it; once it can be made, the sandbox follows.
func TestPodCgroupFailureBlocksSandbox(t *testing.T) {
	h := newHarness(t)
	blocker := filepath.Join(h.cgroups, "memory")
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := newPod("blocked", "c")
	h.start()
	h.apply(wire.OpInsert, pod)
	waitFor(t, "FailedCreatePodSandBox", func() bool { return h.status.hasEvent("FailedCreatePodSandBox", "pod cgroup limits") })
	if n := h.rt.count("RunPodSandbox"); n != 0 {
		t.Fatalf("RunPodSandbox called %d times without the pod cgroup", n)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sandbox after the retry", func() bool {
		h.clock.Step(time.Second)
		return h.rt.count("RunPodSandbox") == 1
	})
	if got := readCgroupFile(t, h.cgroups, "cpu", "kubepods", "poduid-blocked", "cpu.shares"); got != "2" {
		t.Errorf("best-effort cpu.shares %q, want 2", got)
	}
}
