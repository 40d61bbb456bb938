package runner

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// cfsPeriod is the CFS period the kubelet uses (100ms), in microseconds.
const cfsPeriod = 100000

// minCFSQuota is the least quota the kernel accepts (1ms), in microseconds.
const minCFSQuota = 1000

// unlimited is what cgroup v1 takes for "no limit" in cpu.cfs_quota_us and
// memory.limit_in_bytes.
const unlimited = -1

// podCgroupLimits are the values of the pod cgroup, as the kubelet computes them for
// cgroup v1 (its ResourceConfigForPod). Pids are left as the runtime makes them: there is no
// podPidsLimit setting yet. Hugepages are not supported by Edged.
type podCgroupLimits struct {
	cpuShares int64 // cpu.shares
	cpuQuota  int64 // cpu.cfs_quota_us, µs per cfsPeriod; unlimited when not every container has a CPU limit
	memory    int64 // memory.limit_in_bytes; unlimited when not every container has a memory limit
}

// podCgroupLimitsFor sums the pod's resources as Kubernetes does: per resource, the larger of
// the app containers' sum and the largest init container (they run one at a time, before the
// apps), plus spec.overhead. Shares follow the summed CPU requests (a BestEffort pod requests
// nothing and gets the minimum, 2). The quota and the memory limit are set only if every
// container, init containers included, has that limit: one unlimited container makes the
// pod unlimited.
func podCgroupLimitsFor(pod *corev1.Pod) podCgroupLimits {
	var (
		cpuReq, cpuLim, memLim resource.Quantity
		initCPUReq, initCPULim resource.Quantity
		initMemLim             resource.Quantity
		cpuLimited, memLimited = true, true
	)
	maxOf := func(cur *resource.Quantity, q resource.Quantity) {
		if q.Cmp(*cur) > 0 {
			*cur = q.DeepCopy()
		}
	}
	each := func(c *corev1.Container, init bool) {
		lc, lm := c.Resources.Limits.Cpu(), c.Resources.Limits.Memory()
		// A request left out defaults to the limit (the API server's defaulting; done here too
		// so a pod that skipped it is sized as the containers are, see linuxResources).
		rc := c.Resources.Requests.Cpu()
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			rc = lc
		}
		if lc.IsZero() {
			cpuLimited = false
		}
		if lm.IsZero() {
			memLimited = false
		}
		if init {
			maxOf(&initCPUReq, *rc)
			maxOf(&initCPULim, *lc)
			maxOf(&initMemLim, *lm)
			return
		}
		cpuReq.Add(*rc)
		cpuLim.Add(*lc)
		memLim.Add(*lm)
	}
	for i := range pod.Spec.InitContainers {
		each(&pod.Spec.InitContainers[i], true)
	}
	for i := range pod.Spec.Containers {
		each(&pod.Spec.Containers[i], false)
	}
	if len(pod.Spec.InitContainers)+len(pod.Spec.Containers) == 0 {
		cpuLimited, memLimited = false, false
	}
	maxOf(&cpuReq, initCPUReq)
	maxOf(&cpuLim, initCPULim)
	maxOf(&memLim, initMemLim)
	if oh := pod.Spec.Overhead; oh != nil {
		// Overhead is added to requests, and to a limit only where there is one.
		cpuReq.Add(*oh.Cpu())
		if cpuLimited {
			cpuLim.Add(*oh.Cpu())
		}
		if memLimited {
			memLim.Add(*oh.Memory())
		}
	}

	l := podCgroupLimits{cpuShares: milliCPUToShares(milli(cpuReq)), cpuQuota: unlimited, memory: unlimited}
	if cpuLimited {
		l.cpuQuota = milliCPUToQuota(milli(cpuLim))
	}
	if m := byteCount(memLim); memLimited && m > 0 {
		l.memory = m
	}
	return l
}

// maxMilliCPU bounds CPU amounts so the shares and quota arithmetic cannot overflow; it is
// far beyond any real machine (the kernel refuses such a quota anyway, with a clear error).
const maxMilliCPU = math.MaxInt64 / cfsPeriod

// milli is q in thousandths, saturating at maxMilliCPU instead of wrapping.
func milli(q resource.Quantity) int64 {
	if q.Sign() <= 0 {
		return 0
	}
	if q.Cmp(*resource.NewMilliQuantity(maxMilliCPU, resource.DecimalSI)) >= 0 {
		return maxMilliCPU
	}
	return q.MilliValue()
}

// byteCount is q as a whole number, saturating at math.MaxInt64 (which cgroup v1 takes as no
// limit) instead of wrapping.
func byteCount(q resource.Quantity) int64 {
	if q.Sign() <= 0 {
		return 0
	}
	if q.Cmp(*resource.NewQuantity(math.MaxInt64, resource.BinarySI)) >= 0 {
		return math.MaxInt64
	}
	return q.Value()
}

// milliCPUToQuota is the CFS quota of a CPU limit: the limit's share of the period, at least
// the kernel's minimum; unlimited for no limit.
func milliCPUToQuota(m int64) int64 {
	if m <= 0 {
		return unlimited
	}
	m = min(m, maxMilliCPU)
	return max(m*cfsPeriod/1000, minCFSQuota)
}

// Controllers whose pod cgroup Edged makes itself: cpu and memory to hold the limits,
// cpuacct because it is mounted with cpu on most hosts. runc creates the others.
const (
	cgroupCPU     = "cpu"
	cgroupCPUAcct = "cpuacct"
	cgroupMemory  = "memory"
)

// ensurePodCgroup creates the pod cgroup <CgroupFS>/<controller>/<CgroupRoot>/pod<uid> for
// cpu, cpuacct and memory and writes the pod's limits, before the sandbox exists so nothing
// in the pod ever runs unlimited. Pod resources are immutable: a cgroup that already exists
// (edgecore restarted, or a new sandbox) gets the same values again.
func (r *Runner) ensurePodCgroup(pod *corev1.Pod) error {
	v2, err := isCgroupV2(r.cfg.CgroupFS)
	if err != nil {
		return err
	}
	if v2 {
		// keadm join refuses such a host unless told to ignore it: then pods run, as it warns,
		// without pod-level limits (the containers' own limits still apply).
		r.log.Warn("cgroup v2 hierarchy: pod-level cgroup limits are not applied (edged supports them on cgroup v1 only)",
			"cgroupFS", r.cfg.CgroupFS, "pod", podDesc(pod))
		return nil
	}
	l := podCgroupLimitsFor(pod)
	rel := r.cgroupParent(pod)
	dir := func(controller string) (string, error) {
		d := filepath.Join(r.cfg.CgroupFS, controller, rel)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("create pod cgroup: %w", err)
		}
		return d, nil
	}
	cpu, err := dir(cgroupCPU)
	if err != nil {
		return err
	}
	if _, err := dir(cgroupCPUAcct); err != nil {
		return err
	}
	mem, err := dir(cgroupMemory)
	if err != nil {
		return err
	}
	// The period before the quota: the kernel checks the quota against it.
	for _, w := range []struct {
		dir, file string
		v         int64
	}{
		{cpu, "cpu.shares", l.cpuShares},
		{cpu, "cpu.cfs_period_us", cfsPeriod},
		{cpu, "cpu.cfs_quota_us", l.cpuQuota},
		{mem, "memory.limit_in_bytes", l.memory},
	} {
		if err := writeCgroupFile(w.dir, w.file, w.v); err != nil {
			return err
		}
	}
	return nil
}

// isCgroupV2 reports whether fsRoot is a unified (v2) hierarchy: there <fs>/cpu would be a new
// child cgroup, not the cpu controller, and the v1 files do not exist.
func isCgroupV2(fsRoot string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(fsRoot, &st); err != nil {
		return false, fmt.Errorf("cgroup filesystem %s: %w", fsRoot, err)
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC, nil
}

// writeCgroupFile writes v to dir/file as `echo v > file` does (O_TRUNC is harmless on
// cgroupfs and needed for the plain files of tests).
func writeCgroupFile(dir, file string, v int64) error {
	p := filepath.Join(dir, file)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("pod cgroup limit %s: %w", p, err)
	}
	_, werr := f.WriteString(strconv.FormatInt(v, 10))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write %d to %s: %w", v, p, werr)
	}
	return nil
}
