package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on Linux).
const clockTicks = 100

type result struct {
	Namespace       string        `json:"namespace"`
	Image           string        `json:"image"`
	Node            string        `json:"node"`
	PullMS          float64       `json:"prePullMs"`
	FloorSequential []floorSample `json:"floorSequential"`
	FloorParallel   []floorSample `json:"floorParallel"`
	EdgecoreReadyMS float64       `json:"edgecoreReadyMs"`
	Idle0           *idle         `json:"idle0,omitempty"`
	IdlePods        *idle         `json:"idlePods,omitempty"`
	Runs            []startRun    `json:"runs"`
	ParallelCPU     []parallelCPU `json:"parallelCpu"`
	// FloorParallelCPU is containerd's CPU time over the parallel floor's starts.
	FloorParallelCPU *parallelCPU `json:"floorParallelCpu,omitempty"`
	// Pairs are the interleaved rounds: each the parallel floor, then Edged's parallel start.
	Pairs      []pairRound `json:"pairs,omitempty"`
	RSSAfterKB int64       `json:"rssAfterKb"`
	HWMKB      int64       `json:"hwmKb"`
}

// pairRound is one parallel CRI floor and the Edged parallel start right after it.
type pairRound struct {
	Floor []floorSample `json:"floor"`
	Edged []sample      `json:"edged"`
}

// parallelCPU is the CPU time edgecore and containerd used from the first create of a
// parallel run until every pod was Running.
type parallelCPU struct {
	Token       bool    `json:"token"`
	WallS       float64 `json:"wallS"`
	EdgecoreS   float64 `json:"edgecoreS"`
	ContainerdS float64 `json:"containerdS"`
}

// idle is edgecore's memory and CPU over an idle window.
type idle struct {
	Pods       int     `json:"pods"`
	RSSKB      int64   `json:"rssKb"` // at the end of the window
	PSSKB      int64   `json:"pssKb"`
	PSSAnonKB  int64   `json:"pssAnonKb"`
	PSSFileKB  int64   `json:"pssFileKb"`
	AnonKB     int64   `json:"anonKb"` // RSS that is anonymous memory (the rest maps files: the binary)
	RSSStartKB int64   `json:"rssStartKb"`
	Threads    int64   `json:"threads"`
	CPUSeconds float64 `json:"cpuSeconds"` // utime+stime over the window
	WindowS    float64 `json:"windowS"`
	GCLine     string  `json:"gcLine,omitempty"`
}

func (b *bench) measureIdle(ctx context.Context) (*idle, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(b.o.settle):
	}
	pid := b.edge.pid()
	var m idle
	var err error
	if m.RSSStartKB, err = statusKB(pid, "VmRSS"); err != nil {
		return nil, err
	}
	cpu0, err := cpuTicks(pid)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(b.o.idle):
	}
	cpu1, err := cpuTicks(pid)
	if err != nil {
		return nil, err
	}
	m.WindowS = time.Since(t0).Seconds()
	m.CPUSeconds = float64(cpu1-cpu0) / clockTicks
	if m.RSSKB, err = statusKB(pid, "VmRSS"); err != nil {
		return nil, err
	}
	m.Threads, _ = statusKB(pid, "Threads")
	roll, err := smapsRollup(pid)
	if err != nil {
		return nil, err
	}
	m.PSSKB, m.PSSAnonKB, m.PSSFileKB, m.AnonKB = roll["Pss"], roll["Pss_Anon"], roll["Pss_File"], roll["Anonymous"]
	m.GCLine = lastGCLine(b.edge.log)
	return &m, nil
}

// statusKB reads one "<field>: N [kB]" line of /proc/<pid>/status.
func statusKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading status of %d: %w", pid, err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// smapsRollup reads /proc/<pid>/smaps_rollup's "<field>: N kB" lines.
func smapsRollup(pid int) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return nil, fmt.Errorf("reading smaps_rollup of %d: %w", pid, err)
	}
	out := map[string]int64{}
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// cpuTicks is utime+stime of /proc/<pid>/stat, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading stat of %d: %w", pid, err)
	}
	s := string(data)
	// Fields after the command, which is in parentheses and may hold spaces: state is the
	// first, utime the 12th and stime the 13th.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return u + st, nil
}

// run is one start run of Edged.
type startRun struct {
	Mode    string   `json:"mode"`
	Token   bool     `json:"token"`
	Samples []sample `json:"samples"`
}

func (b *bench) summarize(mode string, token bool, s []sample) startRun {
	return startRun{Mode: mode, Token: token, Samples: s}
}

// pct is the nearest-rank percentile of sorted xs.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(float64(len(xs))*p/100+0.999999) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

type dist struct{ p50, p90, p99, max, min float64 }

func distOf[T any](xs []T, f func(T) float64) dist {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return dist{}
	}
	return dist{pct(v, 50), pct(v, 90), pct(v, 99), v[len(v)-1], v[0]}
}

func (d dist) String() string {
	return fmt.Sprintf("p50 %6.1f  p90 %6.1f  p99 %6.1f  max %6.1f  min %6.1f ms", d.p50, d.p90, d.p99, d.max, d.min)
}

func (r *result) print(w io.Writer) {
	fmt.Fprintf(w, "image %s (pre-pull %.0f ms), node %s, namespace %s\n\n", r.Image, r.PullMS, r.Node, r.Namespace)
	floor := map[string]dist{}
	for _, f := range []struct {
		name string
		s    []floorSample
	}{{"one at a time", r.FloorSequential}, {"at once", r.FloorParallel}} {
		if len(f.s) == 0 {
			continue
		}
		d := distOf(f.s, func(s floorSample) float64 { return s.TotalMS })
		floor[f.name] = d
		fmt.Fprintf(w, "CRI floor, %d pods %s: RunPodSandbox+CreateContainer+StartContainer\n", len(f.s), f.name)
		fmt.Fprintf(w, "  total           %s\n", d)
		fmt.Fprintf(w, "  RunPodSandbox   %s\n", distOf(f.s, func(s floorSample) float64 { return s.SandboxM }))
		fmt.Fprintf(w, "  CreateContainer %s\n", distOf(f.s, func(s floorSample) float64 { return s.CreateMS }))
		fmt.Fprintf(w, "  StartContainer  %s\n", distOf(f.s, func(s floorSample) float64 { return s.StartMS }))
	}
	if r.EdgecoreReadyMS > 0 {
		fmt.Fprintf(w, "\nedgecore started, joined and Node Ready in %.1f s\n", r.EdgecoreReadyMS/1000)
	}
	for _, run := range r.Runs {
		d := distOf(run.Samples, func(s sample) float64 { return s.CommitToRunningMS })
		fmt.Fprintf(w, "\nEdged, %d pods %s, token %v\n", len(run.Samples), run.Mode, run.Token)
		fmt.Fprintf(w, "  edge commit → Running reported  %s\n", d)
		fmt.Fprintf(w, "    commit → container started     %s\n", distOf(run.Samples, func(s sample) float64 { return s.CommitToStartedMS }))
		fmt.Fprintf(w, "    log: commit → sandbox started  %s\n", distOf(run.Samples, func(s sample) float64 { return s.CommitToSandboxMS }))
		fmt.Fprintf(w, "    log: sandbox → Created event   %s\n", distOf(run.Samples, func(s sample) float64 { return s.SandboxToCreatedMS }))
		fmt.Fprintf(w, "    log: Created → Started event   %s\n", distOf(run.Samples, func(s sample) float64 { return s.CreatedToStartEvtMS }))
		fmt.Fprintf(w, "    container started → Running    %s\n", distOf(run.Samples, func(s sample) float64 { return s.StartedToRunningMS }))
		fmt.Fprintf(w, "  create returned → edge commit   %s\n", distOf(run.Samples, func(s sample) float64 { return s.CreateToCommitMS }))
		fmt.Fprintf(w, "  create returned → Running       %s\n", distOf(run.Samples, func(s sample) float64 { return s.CreateToRunningMS }))
		fmt.Fprintf(w, "  create called → Running         %s\n", distOf(run.Samples, func(s sample) float64 { return s.CalledToRunningMS }))
		if f, ok := floor[run.Mode]; ok {
			fmt.Fprintf(w, "  vs CRI floor %s: p50 %+.1f ms, p99 %+.1f ms (target: p50 within 150 ms)\n", run.Mode, d.p50-f.p50, d.p99-f.p99)
		}
	}
	if len(r.Pairs) > 0 {
		fmt.Fprintf(w, "\nPaired rounds, pods at once: the CRI floor, then Edged right after (edge commit → Running)\n")
		var diffs []float64
		for i, p := range r.Pairs {
			f := distOf(p.Floor, func(s floorSample) float64 { return s.TotalMS })
			e := distOf(p.Edged, func(s sample) float64 { return s.CommitToRunningMS })
			diffs = append(diffs, e.p50-f.p50)
			fmt.Fprintf(w, "  round %d: floor p50 %.0f / p99 %.0f ms, Edged p50 %.0f / p99 %.0f ms: p50 %+.0f ms\n", i+1, f.p50, f.p99, e.p50, e.p99, e.p50-f.p50)
		}
		slices.Sort(diffs)
		fmt.Fprintf(w, "  Edged − floor, p50, median over %d rounds: %+.0f ms (target: within 150 ms)\n", len(diffs), diffs[len(diffs)/2])
	}
	for _, m := range []*idle{r.Idle0, r.IdlePods} {
		if m == nil {
			continue
		}
		fmt.Fprintf(w, "\nedgecore idle with %d pods: RSS %.1f MB (anonymous %.1f; %.1f at the window's start), PSS %.1f MB (anon %.1f, file %.1f), %d threads, CPU %.2f s over %.0f s (%.2f s/min)\n",
			m.Pods, mb(m.RSSKB), mb(m.AnonKB), mb(m.RSSStartKB), mb(m.PSSKB), mb(m.PSSAnonKB), mb(m.PSSFileKB), m.Threads, m.CPUSeconds, m.WindowS, m.CPUSeconds*60/m.WindowS)
		if m.GCLine != "" {
			fmt.Fprintf(w, "  last GC: %s\n", m.GCLine)
		}
	}
	if c := r.FloorParallelCPU; c != nil {
		fmt.Fprintf(w, "\nCPU during the parallel CRI floor's starts: %.1f s wall, containerd %.2f s\n", c.WallS, c.ContainerdS)
	}
	for _, c := range r.ParallelCPU {
		fmt.Fprintf(w, "\nCPU during the parallel start (token %v): %.1f s wall, edgecore %.2f s, containerd %.2f s (shims and runc not counted)\n",
			c.Token, c.WallS, c.EdgecoreS, c.ContainerdS)
	}
	if r.RSSAfterKB > 0 {
		fmt.Fprintf(w, "\nedgecore after all pods were deleted: RSS %.1f MB, peak (VmHWM) %.1f MB\n", mb(r.RSSAfterKB), mb(r.HWMKB))
	}
}

func mb(kb int64) float64 { return float64(kb) / 1000 }
