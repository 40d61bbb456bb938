package nodestatus

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

func condition(t *testing.T, s corev1.NodeStatus, typ corev1.NodeConditionType) corev1.NodeCondition {
	t.Helper()
	for _, c := range s.Conditions {
		if c.Type == typ {
			return c
		}
	}
	t.Fatalf("no %s condition in %+v", typ, s.Conditions)
	return corev1.NodeCondition{}
}

func mustStatus(t *testing.T, r *Reporter) corev1.NodeStatus {
	t.Helper()
	s, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRegistrationContent(t *testing.T) {
	cfg := testConfig()
	cfg.Labels = map[string]string{"zone": "shelf-3", corev1.LabelHostname: "custom-host"}
	cfg.Annotations = map[string]string{"skerry.io/site": "plant-2"}
	cfg.Taints = []corev1.Taint{{Key: "dedicated", Value: "sensors", Effect: corev1.TaintEffectNoSchedule}}
	cfg.SystemReserved = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	cfg.KubeReserved = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("100Gi"), corev1.ResourceEphemeralStorage: resource.MustParse("10Gi")}
	e := newTestEnv(t, cfg)
	cfg.Labels["zone"] = "changed after New" // the reporter keeps its own copy

	if err := e.r.syncStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := e.out.take()
	if len(got) != 1 {
		t.Fatalf("got %d messages, want the registration only", len(got))
	}
	msg, class := got[0].msg, got[0].class
	wantRoute := wire.Route{Source: "edged", Group: wire.GroupResource, Operation: wire.OpInsert, Resource: "null/node/edge-1"}
	if msg.Route != wantRoute || class != store.FIFO {
		t.Errorf("route %+v class %v, want %+v fifo", msg.Route, class, wantRoute)
	}
	if msg.Header.Timestamp != e.clock.Now().UnixMilli() || msg.Header.ID == "" {
		t.Errorf("header %+v", msg.Header)
	}
	if e.notified() != 1 {
		t.Errorf("Notify called %d times, want 1", e.notified())
	}

	n := decode[corev1.Node](t, msg)
	if n.APIVersion != "v1" || n.Kind != "Node" || n.Name != "edge-1" {
		t.Errorf("type/name %s %s %s", n.APIVersion, n.Kind, n.Name)
	}
	wantLabels := map[string]string{
		"zone":                 "shelf-3",
		EdgeRoleLabel:          "",
		corev1.LabelHostname:   "custom-host",
		corev1.LabelOSStable:   runtime.GOOS,
		corev1.LabelArchStable: runtime.GOARCH,
	}
	if len(n.Labels) != len(wantLabels) {
		t.Errorf("labels %v, want %v", n.Labels, wantLabels)
	}
	for k, v := range wantLabels {
		if got, ok := n.Labels[k]; !ok || got != v {
			t.Errorf("label %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if n.Annotations["skerry.io/site"] != "plant-2" {
		t.Errorf("annotations %v", n.Annotations)
	}
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0] != cfg.Taints[0] {
		t.Errorf("taints %+v", n.Spec.Taints)
	}

	s := n.Status
	check := func(what string, got resource.Quantity, want string) {
		t.Helper()
		if got.Cmp(resource.MustParse(want)) != 0 {
			t.Errorf("%s = %s, want %s", what, got.String(), want)
		}
	}
	check("capacity cpu", s.Capacity[corev1.ResourceCPU], "4")
	check("capacity memory", s.Capacity[corev1.ResourceMemory], "8000000Ki")
	check("capacity pods", s.Capacity[corev1.ResourcePods], "110")
	check("capacity ephemeral-storage", s.Capacity[corev1.ResourceEphemeralStorage], "100Gi")
	check("allocatable cpu", s.Allocatable[corev1.ResourceCPU], "3500m")
	check("allocatable memory", s.Allocatable[corev1.ResourceMemory], "0") // clamped
	check("allocatable pods", s.Allocatable[corev1.ResourcePods], "110")
	check("allocatable ephemeral-storage", s.Allocatable[corev1.ResourceEphemeralStorage], "90Gi")
	wantAddrs := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.10"}, {Type: corev1.NodeHostName, Address: "edge-1"}}
	if len(s.Addresses) != 2 || s.Addresses[0] != wantAddrs[0] || s.Addresses[1] != wantAddrs[1] {
		t.Errorf("addresses %+v, want %+v", s.Addresses, wantAddrs)
	}
	if s.DaemonEndpoints.KubeletEndpoint.Port != 10350 {
		t.Errorf("kubelet port %d", s.DaemonEndpoints.KubeletEndpoint.Port)
	}
	wantInfo := corev1.NodeSystemInfo{
		MachineID: "0123456789abcdef0123456789abcdef", SystemUUID: "4c4c4544-0042-3510-8052-b4c04f4e3232",
		BootID: "8a3f5c1e-0b2d-4e6f-9a8b-7c6d5e4f3a2b", KernelVersion: "6.8.0-47-generic", OSImage: "Ubuntu 24.04.1 LTS",
		ContainerRuntimeVersion: "containerd://2.1.4", KubeletVersion: "v1.36.3-skerry-0.1.0",
		OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
	}
	if s.NodeInfo != wantInfo {
		t.Errorf("nodeInfo\n got %+v\nwant %+v", s.NodeInfo, wantInfo)
	}
	wantConds := map[corev1.NodeConditionType]string{
		corev1.NodeMemoryPressure: ReasonSufficientMemory, corev1.NodeDiskPressure: ReasonNoDiskPressure,
		corev1.NodePIDPressure: ReasonSufficientPID, corev1.NodeReady: ReasonReady,
	}
	if len(s.Conditions) != len(wantConds) {
		t.Errorf("conditions %+v", s.Conditions)
	}
	now := metav1.NewTime(e.clock.Now())
	for typ, reason := range wantConds {
		c := condition(t, s, typ)
		wantStatus := corev1.ConditionFalse
		if typ == corev1.NodeReady {
			wantStatus = corev1.ConditionTrue
		}
		if c.Status != wantStatus || c.Reason != reason || !c.LastHeartbeatTime.Equal(&now) || !c.LastTransitionTime.Equal(&now) {
			t.Errorf("condition %+v, want %s %s at %v", c, wantStatus, reason, now)
		}
	}

	// Registration happens once: the next due report is a status update.
	e.clock.Step(cfg.StatusReportFrequency.Duration)
	if err := e.r.syncStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	got = e.out.take()
	if len(got) != 1 || got[0].msg.Route.Operation != wire.OpUpdate || got[0].msg.Route.Resource != "null/nodestatus/edge-1" || got[0].class != store.Coalesced {
		t.Fatalf("got %+v, want one coalesced nodestatus update", got)
	}
	sn := decode[corev1.Node](t, got[0].msg)
	if sn.Kind != "Node" || sn.APIVersion != "v1" || sn.Name != "edge-1" || len(sn.Labels) != 0 || len(sn.Spec.Taints) != 0 || len(sn.Status.Conditions) != 4 {
		t.Errorf("status object %+v", sn)
	}
}

func TestLeaseContent(t *testing.T) {
	e := newTestEnv(t, testConfig())
	e.clock.Step(1234567 * time.Microsecond)
	if err := e.r.renewLease(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := e.out.take()
	if len(got) != 1 {
		t.Fatalf("got %d messages", len(got))
	}
	msg := got[0].msg
	wantRoute := wire.Route{Source: "edged", Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: "kube-node-lease/lease/edge-1"}
	if msg.Route != wantRoute || got[0].class != store.Coalesced {
		t.Errorf("route %+v class %v", msg.Route, got[0].class)
	}
	l := decode[coordinationv1.Lease](t, msg)
	if l.APIVersion != "coordination.k8s.io/v1" || l.Kind != "Lease" || l.Name != "edge-1" || l.Namespace != "kube-node-lease" {
		t.Errorf("lease meta %+v %+v", l.TypeMeta, l.ObjectMeta)
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != "edge-1" ||
		l.Spec.LeaseDurationSeconds == nil || *l.Spec.LeaseDurationSeconds != 40 ||
		l.Spec.RenewTime == nil || !l.Spec.RenewTime.Time.Equal(e.clock.Now()) {
		t.Errorf("lease spec %+v (renewTime %v, want %v)", l.Spec, l.Spec.RenewTime, e.clock.Now())
	}
	if e.notified() != 1 {
		t.Errorf("Notify called %d times", e.notified())
	}
}

// TestStatusChangeDetection: heartbeat-only changes wait for StatusReportFrequency; real
// changes go at once.
func TestStatusChangeDetection(t *testing.T) {
	cfg := testConfig()
	e := newTestEnv(t, cfg)
	ctx := context.Background()
	sync := func() []enqueued {
		t.Helper()
		if err := e.r.syncStatus(ctx); err != nil {
			t.Fatal(err)
		}
		return e.out.take()
	}
	update := cfg.StatusUpdateFrequency.Duration

	if got := sync(); len(got) != 1 || got[0].msg.Route.Operation != wire.OpInsert {
		t.Fatalf("first sync: %+v, want the registration", got)
	}
	// Ticks within the report frequency: only heartbeats and live figures move.
	for i := 1; i < 30; i++ {
		e.clock.Step(update)
		writeFile(t, e.root, "/proc/meminfo", "MemTotal: 8000000 kB\nMemAvailable: "+
			[]string{"3000000", "3500000", "3900000"}[i%3]+" kB\n")
		e.fs.Free = uint64(50+i) << 30
		if got := sync(); len(got) != 0 {
			t.Fatalf("tick %d (%s): unchanged status enqueued", i, time.Duration(i)*update)
		}
	}
	e.clock.Step(update) // 5 min since the registration
	if got := sync(); len(got) != 1 || got[0].msg.Route.Resource != "null/nodestatus/edge-1" {
		t.Fatalf("report frequency reached: got %+v", got)
	}
	e.clock.Step(update)
	if got := sync(); len(got) != 0 {
		t.Fatalf("the report restarts the report period: got %+v", got)
	}

	// A real change goes at once.
	e.fs.Free = 1 << 30 // 1 % free
	e.clock.Step(update)
	got := sync()
	if len(got) != 1 {
		t.Fatalf("disk pressure: got %d messages", len(got))
	}
	if c := condition(t, decode[corev1.Node](t, got[0].msg).Status, corev1.NodeDiskPressure); c.Status != corev1.ConditionTrue || c.Reason != ReasonDiskPressure {
		t.Errorf("disk pressure condition %+v", c)
	}
	e.clock.Step(update)
	if got := sync(); len(got) != 0 {
		t.Fatalf("pressure persisting is no change: got %+v", got)
	}

	// A changed address is a change too.
	e.r.host.ifaceAddrs = func(string) ([]net.Addr, error) { return []net.Addr{mustCIDR("192.168.1.99/24")}, nil }
	e.clock.Step(update)
	if got := sync(); len(got) != 1 {
		t.Fatalf("new address: got %d messages", len(got))
	}
}

// TestReadyTransitions: Ready follows the runtime; the transition time moves only when
// the status does, the heartbeat at every computation.
func TestReadyTransitions(t *testing.T) {
	e := newTestEnv(t, testConfig())
	t0 := metav1.NewTime(e.clock.Now())
	ready := condition(t, mustStatus(t, e.r), corev1.NodeReady)
	if ready.Status != corev1.ConditionTrue || !ready.LastTransitionTime.Equal(&t0) {
		t.Fatalf("start: %+v", ready)
	}

	e.clock.Step(10 * time.Second)
	t1 := metav1.NewTime(e.clock.Now())
	ready = condition(t, mustStatus(t, e.r), corev1.NodeReady)
	if !ready.LastTransitionTime.Equal(&t0) || !ready.LastHeartbeatTime.Equal(&t1) {
		t.Errorf("still ready: transition %v heartbeat %v, want %v %v", ready.LastTransitionTime, ready.LastHeartbeatTime, t0, t1)
	}

	e.rt.setErr(errors.New("dial unix /run/containerd/containerd.sock: connect: no such file or directory"))
	e.clock.Step(10 * time.Second)
	t2 := metav1.NewTime(e.clock.Now())
	s := mustStatus(t, e.r)
	ready = condition(t, s, corev1.NodeReady)
	if ready.Status != corev1.ConditionFalse || ready.Reason != ReasonContainerRuntimeUnreachable ||
		!strings.Contains(ready.Message, "no such file") || !ready.LastTransitionTime.Equal(&t2) {
		t.Errorf("runtime down: %+v", ready)
	}
	if s.NodeInfo.ContainerRuntimeVersion != "containerd://2.1.4" {
		t.Errorf("the last known runtime version must stay: %q", s.NodeInfo.ContainerRuntimeVersion)
	}
	if mp := condition(t, s, corev1.NodeMemoryPressure); !mp.LastTransitionTime.Equal(&t0) {
		t.Errorf("other conditions keep their transition time: %+v", mp)
	}

	e.clock.Step(10 * time.Second)
	t3 := metav1.NewTime(e.clock.Now())
	ready = condition(t, mustStatus(t, e.r), corev1.NodeReady)
	if ready.Status != corev1.ConditionFalse || !ready.LastTransitionTime.Equal(&t2) || !ready.LastHeartbeatTime.Equal(&t3) {
		t.Errorf("still down: %+v", ready)
	}

	e.rt.setErr(nil)
	e.rt.mu.Lock()
	e.rt.ver = "2.2.0"
	e.rt.mu.Unlock()
	e.clock.Step(10 * time.Second)
	t4 := metav1.NewTime(e.clock.Now())
	s = mustStatus(t, e.r)
	ready = condition(t, s, corev1.NodeReady)
	if ready.Status != corev1.ConditionTrue || ready.Reason != ReasonReady || !ready.LastTransitionTime.Equal(&t4) {
		t.Errorf("runtime back: %+v", ready)
	}
	if s.NodeInfo.ContainerRuntimeVersion != "containerd://2.2.0" {
		t.Errorf("runtime version %q", s.NodeInfo.ContainerRuntimeVersion)
	}
}

// TestStoppingDoesNotFlipReady: a runtime call cut short by shutdown is not an outage.
func TestStoppingDoesNotFlipReady(t *testing.T) {
	e := newTestEnv(t, testConfig())
	if err := e.r.syncStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.out.take()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.clock.Step(time.Hour)
	if err := e.r.syncStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.out.take(); len(got) != 0 {
		t.Fatalf("enqueued %d messages while stopping", len(got))
	}
	if _, err := e.r.Status(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Status on a done context: %v", err)
	}
	if ready := condition(t, mustStatus(t, e.r), corev1.NodeReady); ready.Status != corev1.ConditionTrue {
		t.Errorf("Ready %+v", ready)
	}
}

func TestNoRuntimeConfigured(t *testing.T) {
	e := newTestEnv(t, testConfig())
	e.r.rt = nil
	s := mustStatus(t, e.r)
	ready := condition(t, s, corev1.NodeReady)
	if ready.Status != corev1.ConditionTrue || !strings.Contains(ready.Message, "no container runtime") {
		t.Errorf("Ready %+v", ready)
	}
	if s.NodeInfo.ContainerRuntimeVersion != "" {
		t.Errorf("runtime version %q", s.NodeInfo.ContainerRuntimeVersion)
	}
}

func TestPressureConditions(t *testing.T) {
	e := newTestEnv(t, testConfig())
	writeFile(t, e.root, "/proc/meminfo", "MemTotal: 8000000 kB\nMemAvailable: 102399 kB\n") // < 100Mi
	writeFile(t, e.root, "/proc/loadavg", "1 1 1 5/3774874 1\n")                             // > 90 % of 4194304
	e.fs.Free = e.fs.Total / 20                                                              // 5 %
	s := mustStatus(t, e.r)
	for typ, reason := range map[corev1.NodeConditionType]string{
		corev1.NodeMemoryPressure: ReasonInsufficientMemory,
		corev1.NodeDiskPressure:   ReasonDiskPressure,
		corev1.NodePIDPressure:    ReasonInsufficientPID,
	} {
		if c := condition(t, s, typ); c.Status != corev1.ConditionTrue || c.Reason != reason {
			t.Errorf("%s: %+v", typ, c)
		}
	}
	// Capacity does not follow the live figures.
	if m := s.Capacity[corev1.ResourceMemory]; m.Value() != 8000000*1024 {
		t.Errorf("memory capacity %s", m.String())
	}

	writeFile(t, e.root, "/proc/meminfo", "garbage")
	writeFile(t, e.root, "/proc/loadavg", "")
	e.r.host.statfs = func(string) (fsStats, error) { return fsStats{}, errors.New("statfs: EIO") }
	s = mustStatus(t, e.r)
	for _, typ := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		if c := condition(t, s, typ); c.Status != corev1.ConditionUnknown || c.Reason != ReasonStatsUnavailable {
			t.Errorf("%s: %+v", typ, c)
		}
	}
	if q, ok := s.Capacity[corev1.ResourceEphemeralStorage]; !ok || q.Value() != 100<<30 {
		t.Errorf("ephemeral-storage must keep its last known size: %v %v", q.String(), ok)
	}
}

func TestDisabledThresholds(t *testing.T) {
	cfg := testConfig()
	cfg.Pressure = PressureThresholds{MemoryAvailable: resource.MustParse("0"), DiskFreePercent: 0, PIDPercent: 100}
	e := newTestEnv(t, cfg)
	writeFile(t, e.root, "/proc/meminfo", "MemTotal: 8000000 kB\nMemAvailable: 0 kB\n")
	writeFile(t, e.root, "/proc/loadavg", "1 1 1 5/4194304 1\n")
	e.fs.Free = 0
	s := mustStatus(t, e.r)
	for _, typ := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		if c := condition(t, s, typ); c.Status != corev1.ConditionFalse {
			t.Errorf("%s: %+v", typ, c)
		}
	}
}

func TestExtraConditions(t *testing.T) {
	e := newTestEnv(t, testConfig())
	if err := e.r.SetCondition(corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse}); err == nil {
		t.Error("overriding Ready must be refused")
	}
	if err := e.r.SetCondition(corev1.NodeCondition{Type: "X", Status: "Maybe"}); err == nil {
		t.Error("a bad status must be refused")
	}
	c := corev1.NodeCondition{Type: "DeviceHealthy", Status: corev1.ConditionTrue, Reason: "AllDevicesUp"}
	if err := e.r.SetCondition(c); err != nil {
		t.Fatal(err)
	}
	s := mustStatus(t, e.r)
	got := condition(t, s, "DeviceHealthy")
	now := metav1.NewTime(e.clock.Now())
	if got.Status != corev1.ConditionTrue || got.Reason != "AllDevicesUp" || !got.LastTransitionTime.Equal(&now) {
		t.Errorf("extra condition %+v", got)
	}
	if s.Conditions[len(s.Conditions)-1].Type != "DeviceHealthy" {
		t.Errorf("extra conditions come after the built-in ones: %+v", s.Conditions)
	}
	e.r.ClearCondition("DeviceHealthy")
	for _, c := range mustStatus(t, e.r).Conditions {
		if c.Type == "DeviceHealthy" {
			t.Error("cleared condition still reported")
		}
	}
}

func TestNodeAccessor(t *testing.T) {
	e := newTestEnv(t, testConfig())
	n, err := e.r.Node(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "edge-1" || n.Labels[EdgeRoleLabel] != "" || n.Labels[corev1.LabelHostname] != "edge-1" || len(n.Status.Conditions) != 4 {
		t.Errorf("node %+v", n)
	}
	// A host name that is no label value falls back to the node name.
	long := strings.Repeat("a", 70) + ".example.com"
	e.r.host.hostname = func() (string, error) { return long, nil }
	n, err = e.r.Node(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n.Labels[corev1.LabelHostname] != "edge-1" || n.Status.Addresses[1].Address != long {
		t.Errorf("long host name: label %q, addresses %+v", n.Labels[corev1.LabelHostname], n.Status.Addresses)
	}
}

func TestNewErrors(t *testing.T) {
	good := Deps{Outbox: newFakeOutbox(), KubeletVersion: "v1", RootDir: writeRoot(t, testFiles())}
	bad := testConfig()
	bad.InternalIP = "nope"
	if _, err := New(bad, good); err == nil || !strings.Contains(err.Error(), "internalIP") {
		t.Errorf("bad config: %v", err)
	}
	d := good
	d.Outbox = nil
	if _, err := New(testConfig(), d); err == nil {
		t.Error("no outbox: want an error")
	}
	d = good
	d.KubeletVersion = ""
	if _, err := New(testConfig(), d); err == nil {
		t.Error("no kubelet version: want an error")
	}
	d = good
	d.RootDir = t.TempDir()
	if _, err := New(testConfig(), d); err == nil || !strings.Contains(err.Error(), "memory capacity") {
		t.Errorf("no meminfo: %v", err)
	}
}
