package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestNewLoopback(t *testing.T) {
	f := newFakeRuntime()
	for _, a := range []string{"", "127.0.0.1:0", "localhost:10350", "[::1]:10350"} {
		if _, err := New(Config{Address: a, Runtime: f}); err != nil {
			t.Errorf("%q: %v", a, err)
		}
	}
	for _, a := range []string{"0.0.0.0:10350", ":10350", "10.0.0.1:10350", "nonsense"} {
		if _, err := New(Config{Address: a, Runtime: f}); err == nil {
			t.Errorf("%q accepted", a)
		}
	}
	if _, err := New(Config{Address: "0.0.0.0:10350", AllowRemote: true, Runtime: f}); err != nil {
		t.Error(err)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("no runtime accepted")
	}
}

func TestHostHeader(t *testing.T) {
	f := newFakeRuntime()
	s, _ := newTestServer(t, f, nil)
	for host, want := range map[string]int{"127.0.0.1:10350": 200, "localhost": 200, "[::1]:1": 200, "evil.example:10350": 403, "10.0.0.1": 403} {
		r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		r.Host = host
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("%s: %d", host, w.Code)
		}
	}
	remote, err := New(Config{Runtime: f, AllowRemote: true})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	r.Host = "edge-1.example"
	w := httptest.NewRecorder()
	remote.Handler().ServeHTTP(w, r)
	if w.Code != 200 || w.Body.String() != "ok" {
		t.Fatalf("allowRemote: %d %q", w.Code, w.Body)
	}
}

func TestPodsAndHealth(t *testing.T) {
	_, ts := newTestServer(t, newFakeRuntime(), nil, testPod("ns", "a", "u1", "c"), testPod("ns", "b", "u2", "c"))
	code, body := get(t, ts.URL+"/pods")
	var list corev1.PodList
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != 200 {
		t.Fatalf("%d %v %s", code, err, body)
	}
	if list.Kind != "PodList" || list.APIVersion != "v1" || len(list.Items) != 2 || list.Items[1].Name != "b" {
		t.Fatalf("%+v", list)
	}
	_, empty := newTestServer(t, newFakeRuntime(), nil)
	if _, body := get(t, empty.URL+"/pods"); !strings.Contains(body, `"items":[]`) {
		t.Fatalf("empty: %s", body)
	}
	if code, body := get(t, ts.URL+"/healthz"); code != 200 || body != "ok" {
		t.Fatalf("healthz %d %q", code, body)
	}
}

func TestBodyCapAndPanic(t *testing.T) {
	f := newFakeRuntime()
	s, ts := newTestServer(t, f, func(c *Config) { c.MaxBodyBytes = 10 }, testPod("ns", "web", "", "app"))
	resp, err := http.Post(ts.URL+"/exec/ns/web/app?command=ls&output=1", "text/plain", strings.NewReader(strings.Repeat("x", 100)))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("body cap: %d", resp.StatusCode)
	}
	f.mu.Lock()
	f.panicList = true
	f.mu.Unlock()
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/containerLogs/ns/web/app", nil))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("panic: %d", w.Code)
	}
}

// statsFixture writes /proc files and a runtime with one pod of two containers.
func statsFixture(t *testing.T) (*fakeRuntime, string) {
	t.Helper()
	proc := t.TempDir()
	writeProc(t, proc, 1000)
	f := newFakeRuntime()
	f.sandboxes = []*runtimeapi.PodSandbox{{
		Id: "sb1", State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: 1e9,
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "ns", Uid: "uid-1"},
	}}
	for _, c := range []struct{ id, name string }{{"c1", "app"}, {"c2", "side"}} {
		f.containers = append(f.containers, &runtimeapi.Container{Id: c.id, PodSandboxId: "sb1", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
			Metadata: &runtimeapi.ContainerMetadata{Name: c.name}, CreatedAt: 2e9})
	}
	f.containers = append(f.containers, &runtimeapi.Container{Id: "dead", PodSandboxId: "sb1", State: runtimeapi.ContainerState_CONTAINER_EXITED,
		Metadata: &runtimeapi.ContainerMetadata{Name: "old"}})
	setCPU(f, 100e9, 1e9, 4e9)
	return f, proc
}

func writeProc(t *testing.T, dir string, busyTicks int) {
	t.Helper()
	stat := "cpu  " + strconv.Itoa(busyTicks/2) + " 0 " + strconv.Itoa(busyTicks/2) + " 5000 300 0 0 0 0 0\ncpu0 1 2 3 4\nbtime 1700000000\n"
	mem := "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    500 kB\nInactive(file):  100 kB\n"
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meminfo"), []byte(mem), 0o600); err != nil {
		t.Fatal(err)
	}
}

// setCPU sets the containers' cumulative CPU (c1 has usage, c2 twice that) at time at (ns).
func setCPU(f *fakeRuntime, at int64, usage uint64, pod uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cstats = nil
	for i, id := range []string{"c1", "c2"} {
		f.cstats = append(f.cstats, &runtimeapi.ContainerStats{
			Attributes: &runtimeapi.ContainerAttributes{Id: id},
			Cpu:        &runtimeapi.CpuUsage{Timestamp: at, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: usage * uint64(i+1)}},
			Memory:     &runtimeapi.MemoryUsage{Timestamp: at, WorkingSetBytes: &runtimeapi.UInt64Value{Value: 1000 * uint64(i+1)}, UsageBytes: &runtimeapi.UInt64Value{Value: 3000}},
		})
	}
	f.pstats = []*runtimeapi.PodSandboxStats{{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: "sb1"},
		Linux: &runtimeapi.LinuxPodSandboxStats{
			Cpu:    &runtimeapi.CpuUsage{Timestamp: at, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: pod}},
			Memory: &runtimeapi.MemoryUsage{Timestamp: at, WorkingSetBytes: &runtimeapi.UInt64Value{Value: 5000}},
		},
	}}
}

func summary(t *testing.T, url string) Summary {
	t.Helper()
	code, body := get(t, url+"/stats/summary")
	var s Summary
	if err := json.Unmarshal([]byte(body), &s); err != nil || code != 200 {
		t.Fatalf("%d %v %s", code, err, body)
	}
	return s
}

func TestStatsSummary(t *testing.T) {
	f, proc := statsFixture(t)
	now := time.Unix(1700000100, 0)
	_, ts := newTestServer(t, f, func(c *Config) { c.ProcRoot = proc; c.Now = func() time.Time { return now } })
	s1 := summary(t, ts.URL)
	if s1.Node.NodeName != "edge-1" || *s1.Node.CPU.UsageCoreNanoSeconds != 1000*1e7 || s1.Node.CPU.UsageNanoCores != nil {
		t.Fatalf("node: %+v", s1.Node.CPU)
	}
	if m := s1.Node.Memory; *m.UsageBytes != 800*1024 || *m.WorkingSetBytes != 700*1024 || *m.AvailableBytes != 300*1024 {
		t.Fatalf("node memory: %+v", m)
	}
	if s1.Node.StartTime.Unix() != 1700000000 || s1.Node.Fs == nil || *s1.Node.Fs.CapacityBytes == 0 {
		t.Fatalf("node: %+v", s1.Node)
	}
	if len(s1.Pods) != 1 || s1.Pods[0].PodRef != (PodReference{Name: "web", Namespace: "ns", UID: "uid-1"}) || len(s1.Pods[0].Containers) != 2 {
		t.Fatalf("pods: %+v", s1.Pods)
	}
	if c := s1.Pods[0].Containers[0]; c.Name != "app" || *c.CPU.UsageCoreNanoSeconds != 1e9 || c.CPU.UsageNanoCores != nil || *c.Memory.WorkingSetBytes != 1000 {
		t.Fatalf("container: %+v", c)
	}

	// Two seconds later: app used one more second of CPU (0.5 cores), side two (1 core),
	// the pod three; the node 200 more ticks (2 s of CPU: 1 core).
	setCPU(f, 102e9, 2e9, 7e9)
	writeProc(t, proc, 1200)
	now = now.Add(2 * time.Second)
	s2 := summary(t, ts.URL)
	p := s2.Pods[0]
	if v := p.Containers[0].CPU.UsageNanoCores; v == nil || *v != 5e8 {
		t.Fatalf("app nanocores %v", v)
	}
	if v := p.Containers[1].CPU.UsageNanoCores; v == nil || *v != 1e9 {
		t.Fatalf("side nanocores %v", v)
	}
	if v := p.CPU.UsageNanoCores; v == nil || *v != 15e8 || *p.Memory.WorkingSetBytes != 5000 {
		t.Fatalf("pod cpu %+v memory %+v", p.CPU, p.Memory)
	}
	if v := s2.Node.CPU.UsageNanoCores; v == nil || *v != 1e9 {
		t.Fatalf("node nanocores %v", v)
	}
	// A scrape of the same runtime sample keeps its rate.
	s3 := summary(t, ts.URL)
	if v := s3.Pods[0].Containers[0].CPU.UsageNanoCores; v == nil || *v != 5e8 {
		t.Fatalf("repeat nanocores %v", v)
	}

	// Without sandbox stats the pod's figures are its containers' sums.
	f.mu.Lock()
	f.pstatsErr = status.Error(codes.Unimplemented, "no")
	f.mu.Unlock()
	s4 := summary(t, ts.URL)
	if p := s4.Pods[0]; *p.CPU.UsageCoreNanoSeconds != 6e9 || *p.Memory.WorkingSetBytes != 3000 {
		t.Fatalf("summed pod: %+v %+v", p.CPU, p.Memory)
	}
}

func TestResourceMetrics(t *testing.T) {
	f, proc := statsFixture(t)
	_, ts := newTestServer(t, f, func(c *Config) { c.ProcRoot = proc })
	code, body := get(t, ts.URL+"/metrics/resource")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	for _, want := range []string{
		"# TYPE container_cpu_usage_seconds_total counter\n",
		`container_cpu_usage_seconds_total{container="app",namespace="ns",pod="web"} 1 100000` + "\n",
		`container_cpu_usage_seconds_total{container="side",namespace="ns",pod="web"} 2 100000` + "\n",
		`container_memory_working_set_bytes{container="side",namespace="ns",pod="web"} 2000 100000` + "\n",
		`container_start_time_seconds{container="app",namespace="ns",pod="web"} 2 2000` + "\n",
		"\nnode_cpu_usage_seconds_total 10 ",
		"\nnode_memory_working_set_bytes 716800 ",
		`pod_cpu_usage_seconds_total{namespace="ns",pod="web"} 4 100000` + "\n",
		`pod_memory_working_set_bytes{namespace="ns",pod="web"} 5000 100000` + "\n",
		"\nscrape_error 0\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q in\n%s", want, body)
		}
	}
	if strings.Contains(body, `container="old"`) {
		t.Error("exited container reported")
	}
	f.mu.Lock()
	f.pstatsErr = status.Error(codes.Unavailable, "down")
	f.mu.Unlock()
	if _, body := get(t, ts.URL+"/metrics/resource"); !strings.Contains(body, "\nscrape_error 1\n") {
		t.Errorf("scrape_error not set:\n%s", body)
	}
	if escapeLabel("a\"b\\c\nd") != `a\"b\\c\nd` {
		t.Error("label escaping")
	}
}

func TestRunListens(t *testing.T) {
	s, err := New(Config{Address: "127.0.0.1:0", Runtime: newFakeRuntime()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background(), mustListen(t)); err == nil {
		t.Fatal("second Serve accepted")
	}
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// FuzzHandler: no request path or query makes the handler panic or answer 500.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{"/containerLogs/ns/web/app?tailLines=2&follow=0", "/exec/ns/web/app?command=x&output=1",
		"/portForward/ns/web?port=1", "/stats/summary", "/pods", "/containerLogs/ns/web/app?sinceSeconds=1&limitBytes=3&previous=true",
		"/exec//x/y", "/containerLogs/%2e%2e/web/app"} {
		f.Add(s)
	}
	rt := newFakeRuntime()
	dir := f.TempDir()
	path := filepath.Join(dir, "c1.log")
	if err := os.WriteFile(path, []byte(sampleLog), 0o600); err != nil {
		f.Fatal(err)
	}
	rt.containers = []*runtimeapi.Container{{Id: "c1", State: runtimeapi.ContainerState_CONTAINER_EXITED, Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Labels: map[string]string{"io.kubernetes.pod.namespace": "ns", "io.kubernetes.pod.name": "web", "io.kubernetes.container.name": "app"}}}
	rt.statuses["c1"] = &runtimeapi.ContainerStatus{Id: "c1", State: runtimeapi.ContainerState_CONTAINER_EXITED, LogPath: path}
	rt.streamURL = "http://127.0.0.1:1"
	s, err := New(Config{Runtime: rt, ProcRoot: dir, Pods: func() []*corev1.Pod { return []*corev1.Pod{testPod("ns", "web", "", "app")} }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if strings.HasPrefix(target, "/exec") || strings.HasPrefix(target, "/attach") || strings.HasPrefix(target, "/portForward") {
			// Streams would dial; their parsing is covered without dialling.
			target = "/containerLogs" + strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(target, "/exec"), "/attach"), "/portForward")
		}
		r, err := http.NewRequest(http.MethodGet, "http://127.0.0.1"+target, nil)
		if err != nil || !strings.HasPrefix(r.URL.Path, "/") {
			return
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code == http.StatusInternalServerError {
			t.Fatalf("%s: 500 %s", target, w.Body)
		}
	})
}
