package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

// The summary types mirror k8s.io/kubelet/pkg/apis/stats/v1alpha1 (same JSON names) for the
// fields Edged fills; k8s.io/kubelet is not a dependency of this module.

// Summary is the answer of /stats/summary.
type Summary struct {
	Node NodeStats  `json:"node"`
	Pods []PodStats `json:"pods"`
}

// NodeStats are the host's figures.
type NodeStats struct {
	NodeName  string       `json:"nodeName"`
	StartTime metav1.Time  `json:"startTime"`
	CPU       *CPUStats    `json:"cpu,omitempty"`
	Memory    *MemoryStats `json:"memory,omitempty"`
	Fs        *FsStats     `json:"fs,omitempty"`
}

// PodStats are one pod's figures, from its sandbox and containers.
type PodStats struct {
	PodRef     PodReference     `json:"podRef"`
	StartTime  metav1.Time      `json:"startTime"`
	Containers []ContainerStats `json:"containers"`
	CPU        *CPUStats        `json:"cpu,omitempty"`
	Memory     *MemoryStats     `json:"memory,omitempty"`
}

// PodReference names a pod.
type PodReference struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
}

// ContainerStats are one running container's figures.
type ContainerStats struct {
	Name      string       `json:"name"`
	StartTime metav1.Time  `json:"startTime"`
	CPU       *CPUStats    `json:"cpu,omitempty"`
	Memory    *MemoryStats `json:"memory,omitempty"`
	Rootfs    *FsStats     `json:"rootfs,omitempty"`
}

// CPUStats: UsageNanoCores is the rate between two samples, absent on the first.
type CPUStats struct {
	Time                 metav1.Time `json:"time"`
	UsageNanoCores       *uint64     `json:"usageNanoCores,omitempty"`
	UsageCoreNanoSeconds *uint64     `json:"usageCoreNanoSeconds,omitempty"`
}

// MemoryStats in bytes.
type MemoryStats struct {
	Time            metav1.Time `json:"time"`
	AvailableBytes  *uint64     `json:"availableBytes,omitempty"`
	UsageBytes      *uint64     `json:"usageBytes,omitempty"`
	WorkingSetBytes *uint64     `json:"workingSetBytes,omitempty"`
	RSSBytes        *uint64     `json:"rssBytes,omitempty"`
	PageFaults      *uint64     `json:"pageFaults,omitempty"`
	MajorPageFaults *uint64     `json:"majorPageFaults,omitempty"`
}

// FsStats of a filesystem.
type FsStats struct {
	Time           metav1.Time `json:"time"`
	AvailableBytes *uint64     `json:"availableBytes,omitempty"`
	CapacityBytes  *uint64     `json:"capacityBytes,omitempty"`
	UsedBytes      *uint64     `json:"usedBytes,omitempty"`
	InodesFree     *uint64     `json:"inodesFree,omitempty"`
	Inodes         *uint64     `json:"inodes,omitempty"`
	InodesUsed     *uint64     `json:"inodesUsed,omitempty"`
}

// minSampleWindow: a sample replaces the kept one only when this much newer, so scrapes in
// quick succession still get a rate over a meaningful window.
const minSampleWindow = time.Second

// userHZ is the unit of /proc/stat (sysconf(_SC_CLK_TCK), 100 on every Linux build).
const userHZ = 100

// cpuSample is a cumulative CPU time at a moment, and the rate computed when it was taken.
type cpuSample struct {
	at    int64 // ns since the epoch
	usage uint64
	rate  *uint64
}

// cpuSamples keeps the previous sample per node, pod and container, to compute rates.
type cpuSamples struct {
	mu sync.Mutex
	m  map[string]cpuSample
}

func newCPUSamples() *cpuSamples { return &cpuSamples{m: map[string]cpuSample{}} }

// rate records a sample and returns the usage in nanocores since the kept one, or nil
// without a usable previous sample. The same sample again (a runtime that caches its
// figures) gets the rate computed for it before.
func (c *cpuSamples) rate(key string, at int64, usage uint64) *uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, ok := c.m[key]
	if ok && at == prev.at && usage == prev.usage {
		return prev.rate
	}
	var out *uint64
	if ok && at > prev.at && usage >= prev.usage {
		v := uint64(float64(usage-prev.usage) / float64(at-prev.at) * 1e9)
		out = &v
	}
	if !ok || usage < prev.usage || at < prev.at || time.Duration(at-prev.at) >= minSampleWindow {
		c.m[key] = cpuSample{at: at, usage: usage, rate: out}
	}
	return out
}

// prune forgets samples of what is gone.
func (c *cpuSamples) prune(keep map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if !keep[k] {
			delete(c.m, k)
		}
	}
}

// collected is one scrape: the summary plus whether part of it failed.
type collected struct {
	summary     Summary
	scrapeError bool
}

// serveSummary answers /stats/summary.
func (s *Server) serveSummary(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	c, err := s.collect(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, &c.summary)
}

// collect reads the host's and the runtime's figures. Only the sandbox list is essential;
// other failures leave figures out and set scrapeError.
func (s *Server) collect(ctx context.Context) (*collected, error) {
	now := s.cfg.Now()
	c := &collected{summary: Summary{Pods: []PodStats{}}}
	keep := map[string]bool{}
	node := &c.summary.Node
	node.NodeName = s.cfg.NodeName
	if busy, boot, err := readProcStat(filepath.Join(s.cfg.ProcRoot, "stat")); err != nil {
		s.log.Debug("node cpu", "err", err)
		c.scrapeError = true
	} else {
		usage := busy * (1e9 / userHZ)
		node.StartTime = metav1.NewTime(boot)
		node.CPU = &CPUStats{Time: metav1.NewTime(now), UsageCoreNanoSeconds: &usage,
			UsageNanoCores: s.stats.rate("node", now.UnixNano(), usage)}
		keep["node"] = true
	}
	if m, err := readMeminfo(filepath.Join(s.cfg.ProcRoot, "meminfo"), now); err != nil {
		s.log.Debug("node memory", "err", err)
		c.scrapeError = true
	} else {
		node.Memory = m
	}
	node.Fs = fsStats(s.cfg.RootDir, now)

	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	sbs, err := s.cfg.Runtime.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	}})
	if err != nil {
		return nil, criError("list sandboxes", err)
	}
	ctrs, err := s.cfg.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	}})
	if err != nil {
		s.log.Debug("list containers", "err", err)
		c.scrapeError = true
	}
	cstats, err := s.cfg.Runtime.ListContainerStats(cctx, &runtimeapi.ListContainerStatsRequest{})
	if err != nil {
		s.log.Debug("list container stats", "err", err)
		c.scrapeError = true
	}
	pstats, err := s.cfg.Runtime.ListPodSandboxStats(cctx, &runtimeapi.ListPodSandboxStatsRequest{})
	if err != nil {
		s.log.Debug("list pod sandbox stats", "err", err)
		c.scrapeError = true
	}

	statsByID := map[string]*runtimeapi.ContainerStats{}
	for _, st := range cstats.GetStats() {
		if id := st.GetAttributes().GetId(); id != "" {
			statsByID[id] = st
		}
	}
	podStatsByID := map[string]*runtimeapi.PodSandboxStats{}
	for _, st := range pstats.GetStats() {
		if id := st.GetAttributes().GetId(); id != "" {
			podStatsByID[id] = st
		}
	}
	byPod := map[string][]ContainerStats{}
	for _, ctr := range ctrs.GetContainers() {
		if ctr == nil || ctr.Id == "" || ctr.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		name := ctr.GetMetadata().GetName()
		if name == "" {
			name = ctr.Labels[edged.LabelContainerName]
		}
		cs := ContainerStats{Name: name, StartTime: metav1.NewTime(time.Unix(0, ctr.CreatedAt))}
		if st := statsByID[ctr.Id]; st != nil {
			key := "ctr/" + ctr.Id
			cs.CPU = s.cpuStats(key, st.GetCpu(), now)
			if cs.CPU != nil {
				keep[key] = true
			}
			cs.Memory = memoryStats(st.GetMemory(), now)
			if u := st.GetWritableLayer().GetUsedBytes(); u != nil {
				cs.Rootfs = &FsStats{Time: nsTime(st.GetWritableLayer().GetTimestamp(), now), UsedBytes: ptr(u.GetValue())}
				if i := st.GetWritableLayer().GetInodesUsed(); i != nil {
					cs.Rootfs.InodesUsed = ptr(i.GetValue())
				}
			}
		}
		byPod[ctr.PodSandboxId] = append(byPod[ctr.PodSandboxId], cs)
	}
	for _, sb := range sbs.GetItems() {
		if sb == nil || sb.Id == "" {
			continue
		}
		md := sb.GetMetadata()
		ps := PodStats{
			PodRef: PodReference{
				Name:      firstNonEmpty(md.GetName(), sb.Labels[edged.LabelPodName]),
				Namespace: firstNonEmpty(md.GetNamespace(), sb.Labels[edged.LabelPodNamespace]),
				UID:       firstNonEmpty(md.GetUid(), sb.Labels[edged.LabelPodUID]),
			},
			StartTime:  metav1.NewTime(time.Unix(0, sb.CreatedAt)),
			Containers: byPod[sb.Id],
		}
		if ps.Containers == nil {
			ps.Containers = []ContainerStats{}
		}
		sort.Slice(ps.Containers, func(i, j int) bool { return ps.Containers[i].Name < ps.Containers[j].Name })
		key := "pod/" + sb.Id
		if st := podStatsByID[sb.Id]; st != nil && st.GetLinux() != nil {
			ps.CPU = s.cpuStats(key, st.GetLinux().GetCpu(), now)
			ps.Memory = memoryStats(st.GetLinux().GetMemory(), now)
		}
		if ps.CPU == nil {
			ps.CPU = s.sumCPU(key, ps.Containers, now)
		}
		if ps.CPU != nil {
			keep[key] = true
		}
		if ps.Memory == nil {
			ps.Memory = sumMemory(ps.Containers, now)
		}
		c.summary.Pods = append(c.summary.Pods, ps)
	}
	sort.Slice(c.summary.Pods, func(i, j int) bool {
		a, b := c.summary.Pods[i].PodRef, c.summary.Pods[j].PodRef
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	s.stats.prune(keep)
	return c, nil
}

// cpuStats converts a CRI sample, computing the rate from the previous one under key.
func (s *Server) cpuStats(key string, u *runtimeapi.CpuUsage, now time.Time) *CPUStats {
	if u == nil || u.GetUsageCoreNanoSeconds() == nil {
		return nil
	}
	at := u.GetTimestamp()
	if at <= 0 {
		at = now.UnixNano()
	}
	usage := u.GetUsageCoreNanoSeconds().GetValue()
	cs := &CPUStats{Time: metav1.NewTime(time.Unix(0, at)), UsageCoreNanoSeconds: &usage}
	cs.UsageNanoCores = s.stats.rate(key, at, usage)
	if cs.UsageNanoCores == nil && u.GetUsageNanoCores() != nil {
		// A runtime that computes the rate itself is used until there are two samples.
		cs.UsageNanoCores = ptr(u.GetUsageNanoCores().GetValue())
	}
	return cs
}

// sumCPU is a pod's CPU when the runtime gives no sandbox figures: its containers' sum.
func (s *Server) sumCPU(key string, cs []ContainerStats, now time.Time) *CPUStats {
	var total uint64
	var at time.Time
	have := false
	for _, c := range cs {
		if c.CPU == nil || c.CPU.UsageCoreNanoSeconds == nil {
			continue
		}
		have = true
		total += *c.CPU.UsageCoreNanoSeconds
		if c.CPU.Time.After(at) {
			at = c.CPU.Time.Time
		}
	}
	if !have {
		return nil
	}
	if at.IsZero() {
		at = now
	}
	return &CPUStats{Time: metav1.NewTime(at), UsageCoreNanoSeconds: &total, UsageNanoCores: s.stats.rate(key, at.UnixNano(), total)}
}

// sumMemory is a pod's memory when the runtime gives no sandbox figures.
func sumMemory(cs []ContainerStats, now time.Time) *MemoryStats {
	var ws, usage uint64
	have := false
	for _, c := range cs {
		if c.Memory == nil {
			continue
		}
		if c.Memory.WorkingSetBytes != nil {
			ws += *c.Memory.WorkingSetBytes
			have = true
		}
		if c.Memory.UsageBytes != nil {
			usage += *c.Memory.UsageBytes
			have = true
		}
	}
	if !have {
		return nil
	}
	return &MemoryStats{Time: metav1.NewTime(now), WorkingSetBytes: &ws, UsageBytes: &usage}
}

func memoryStats(m *runtimeapi.MemoryUsage, now time.Time) *MemoryStats {
	if m == nil {
		return nil
	}
	ms := &MemoryStats{Time: nsTime(m.GetTimestamp(), now)}
	val := func(v *runtimeapi.UInt64Value) *uint64 {
		if v == nil {
			return nil
		}
		return ptr(v.GetValue())
	}
	ms.WorkingSetBytes = val(m.GetWorkingSetBytes())
	ms.UsageBytes = val(m.GetUsageBytes())
	ms.AvailableBytes = val(m.GetAvailableBytes())
	ms.RSSBytes = val(m.GetRssBytes())
	ms.PageFaults = val(m.GetPageFaults())
	ms.MajorPageFaults = val(m.GetMajorPageFaults())
	return ms
}

func nsTime(ns int64, now time.Time) metav1.Time {
	if ns <= 0 {
		return metav1.NewTime(now)
	}
	return metav1.NewTime(time.Unix(0, ns))
}

func ptr[T any](v T) *T { return &v }

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// maxProcFile bounds what is read of a /proc file.
const maxProcFile = 1 << 20

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer func() { _ = f.Close() }()
	var b bytes.Buffer
	if _, err := b.ReadFrom(&limitedReader{f: f, n: maxProcFile}); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b.Bytes(), nil
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("file too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// readProcStat returns the host's busy CPU time in ticks (everything but idle and iowait)
// and its boot time.
func readProcStat(path string) (busy uint64, boot time.Time, err error) {
	b, err := readSmall(path)
	if err != nil {
		return 0, time.Time{}, err
	}
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxProcFile)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "cpu":
			// user nice system idle iowait irq softirq steal [guest guest_nice]; guest time
			// is already counted in user.
			if len(f) < 5 {
				return 0, time.Time{}, fmt.Errorf("%s: short cpu line", path)
			}
			for i := 1; i < len(f) && i <= 8; i++ {
				if i == 4 || i == 5 {
					continue
				}
				v, perr := strconv.ParseUint(f[i], 10, 64)
				if perr != nil {
					return 0, time.Time{}, fmt.Errorf("%s: cpu field %d: %w", path, i, perr)
				}
				busy += v
			}
			found = true
		case "btime":
			if len(f) >= 2 {
				if v, perr := strconv.ParseInt(f[1], 10, 64); perr == nil {
					boot = time.Unix(v, 0)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	if !found {
		return 0, time.Time{}, fmt.Errorf("%s: no cpu line", path)
	}
	return busy, boot, nil
}

// readMeminfo returns the host's memory as the kubelet counts it: usage is what is not free,
// the working set is usage less inactive file pages (reclaimable), available is the rest.
func readMeminfo(path string, now time.Time) (*MemoryStats, error) {
	b, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	vals := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || v > (1<<54) {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			v *= 1024
		}
		vals[name] = v
	}
	total, ok1 := vals["MemTotal"]
	free, ok2 := vals["MemFree"]
	if !ok1 || !ok2 || free > total {
		return nil, fmt.Errorf("%s: no MemTotal or MemFree", path)
	}
	usage := total - free
	ws := usage
	if inactive := vals["Inactive(file)"]; inactive < ws {
		ws -= inactive
	} else {
		ws = 0
	}
	avail := total - ws
	return &MemoryStats{Time: metav1.NewTime(now), UsageBytes: &usage, WorkingSetBytes: &ws, AvailableBytes: &avail}, nil
}
