package runner

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
	"github.com/skerry-io/skerry/pkg/wire"
)

func TestCreateStartsSandboxAndContainersInOrder(t *testing.T) {
	h := newHarness(t)
	pod := newPod("web", "a", "b")
	pod.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "127.0.0.1:5000/library/busybox:1.36", ImagePullPolicy: corev1.PullIfNotPresent}}
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 18080}}
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", Value: "1"}}
	pod.Spec.Containers[0].Command = []string{"/demo"}
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
	}
	user, no := int64(1000), false
	pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		RunAsUser: &user, AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: new(true),
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}},
	}
	fsGroup := int64(2000)
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: &fsGroup, SupplementalGroups: []int64{5}}
	h.start()
	h.apply(wire.OpInsert, pod)

	waitFor(t, "init started", func() bool { return h.rt.count("StartContainer init/0") == 1 })
	st := h.waitStatus(pod, "pending while init runs", func(s corev1.PodStatus) bool {
		return s.Phase == corev1.PodPending && containerStatus(s, "init").State.Running != nil
	})
	if got := containerStatus(st, "a").State.Waiting; got == nil || got.Reason != reasonPodInitializing {
		t.Errorf("a while init runs: %+v", got)
	}
	if h.rt.count("CreateContainer a") != 0 {
		t.Fatal("container a created before init finished")
	}
	h.rt.exit(t, "init", 0)
	h.sync(pod)
	st = h.waitStatus(pod, "running and ready", func(s corev1.PodStatus) bool {
		return s.Phase == corev1.PodRunning && s.PodIP != "" && podReady(s)
	})
	want := []string{"RunPodSandbox web", "PullImage 127.0.0.1:5000/library/busybox:1.36", "CreateContainer init/0", "StartContainer init/0",
		"CreateContainer a/0", "StartContainer a/0", "CreateContainer b/0", "StartContainer b/0"}
	if got := h.rt.callLog(); !slices.Equal(got[:len(want)], want) {
		t.Errorf("calls:\n got %q\nwant %q", got, want)
	}

	h.rt.mu.Lock()
	var sb *fakeSandbox
	for _, s := range h.rt.sbs {
		sb = s
	}
	a := h.rt.newestLocked("a")
	h.rt.mu.Unlock()
	cfg := sb.cfg
	if cfg.Linux.CgroupParent != "/kubepods/poduid-web" || cfg.Metadata.Uid != "uid-web" || cfg.Hostname != "web" ||
		cfg.LogDirectory != filepath.Join(h.podsDir, "uid-web", "logs") {
		t.Errorf("sandbox config: %+v", cfg)
	}
	if cfg.Labels[edged.LabelPodUID] != "uid-web" || cfg.Labels[edged.LabelPodName] != "web" || cfg.Labels["app"] != "web" {
		t.Errorf("sandbox labels: %v", cfg.Labels)
	}
	if len(cfg.PortMappings) != 1 || cfg.PortMappings[0].HostPort != 18080 || cfg.PortMappings[0].ContainerPort != 8080 {
		t.Errorf("port mappings: %v", cfg.PortMappings)
	}
	if d := cfg.DnsConfig; !slices.Equal(d.Servers, []string{"192.0.2.53"}) || !slices.Equal(d.Searches, []string{"example.org"}) {
		t.Errorf("dns: %+v", d)
	}
	if _, err := os.Stat(cfg.LogDirectory); err != nil {
		t.Errorf("log directory: %v", err)
	}
	cc := a.cfg
	if cc.LogPath != "a/0.log" || cc.Labels[edged.LabelContainerName] != "a" || cc.Annotations[annotationRestartCount] != "0" ||
		!slices.Equal(cc.Command, []string{"/demo"}) {
		t.Errorf("container config: %+v", cc)
	}
	res := cc.Linux.Resources
	if res.CpuShares != 256 || res.CpuQuota != 50000 || res.CpuPeriod != 100000 || res.MemoryLimitInBytes != 128<<20 {
		t.Errorf("resources: %+v", res)
	}
	sc := cc.Linux.SecurityContext
	if sc.RunAsUser.GetValue() != 1000 || !sc.NoNewPrivs || !sc.ReadonlyRootfs || !slices.Equal(sc.SupplementalGroups, []int64{5, 2000}) ||
		!slices.Equal(sc.Capabilities.AddCapabilities, []string{"NET_ADMIN"}) || !slices.Equal(sc.Capabilities.DropCapabilities, []string{"ALL"}) {
		t.Errorf("security context: %+v", sc)
	}
	if a.sandboxConfigOnAdd == nil || a.sandboxConfigOnAdd.Linux.CgroupParent != cfg.Linux.CgroupParent {
		t.Errorf("CreateContainer without the sandbox config")
	}
	var env []string
	for _, kv := range cc.Envs {
		env = append(env, kv.Key+"="+string(kv.Value))
	}
	if !slices.Contains(env, "X=1") || !slices.Contains(env, "POD_IP="+sb.ip) {
		t.Errorf("env: %v", env)
	}

	// Status.
	as := containerStatus(st, "a")
	if as.ContainerID != "containerd://"+a.id || !as.Ready || as.Started == nil || !*as.Started || as.State.Running == nil || as.ImageID == "" {
		t.Errorf("status of a: %+v", as)
	}
	if is := containerStatus(st, "init"); is.State.Terminated == nil || is.State.Terminated.Reason != "Completed" {
		t.Errorf("status of init: %+v", is)
	}
	if st.QOSClass != corev1.PodQOSBurstable || st.HostIP != "192.0.2.10" || st.StartTime == nil || st.PodIP != sb.ip {
		t.Errorf("pod status: %+v", st)
	}
	if !h.prober.wasAdded(a.id) {
		t.Error("container a not given to the prober")
	}
	for _, r := range []string{"Pulling", "Pulled", "Created", "Started"} {
		if !h.status.hasEvent(r, "") {
			t.Errorf("no %s event", r)
		}
	}
}

func podReady(s corev1.PodStatus) bool {
	for _, c := range s.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func TestCrashLoopBackOff(t *testing.T) {
	h := newHarness(t)
	pod := newPod("crash", "c")
	h.start()
	h.apply(wire.OpInsert, pod)
	waitFor(t, "first start", func() bool { return h.rt.count("StartContainer c/0") == 1 })

	// First exit: restarted at once (the kubelet's first restart has no delay).
	h.rt.exit(t, "c", 1)
	h.sync(pod)
	waitFor(t, "restart 1", func() bool { return h.rt.count("StartContainer c/1") == 1 })

	// Second exit: back-off 10s.
	h.rt.exit(t, "c", 2)
	h.sync(pod)
	st := h.waitStatus(pod, "CrashLoopBackOff 10s", func(s corev1.PodStatus) bool {
		w := containerStatus(s, "c").State.Waiting
		return w != nil && w.Reason == reasonCrashLoopBackOff
	})
	cs := containerStatus(st, "c")
	if want := "back-off 10s restarting failed container=c pod=crash_default(uid-crash)"; cs.State.Waiting.Message != want {
		t.Errorf("message %q, want %q", cs.State.Waiting.Message, want)
	}
	if cs.RestartCount != 1 || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 2 || st.Phase != corev1.PodRunning {
		t.Errorf("status: %+v phase %s", cs, st.Phase)
	}
	h.clock.Step(9 * time.Second)
	h.sync(pod)
	time.Sleep(20 * time.Millisecond)
	if h.rt.count("StartContainer c/2") != 0 {
		t.Fatal("restarted before the back-off ended")
	}
	h.clock.Step(time.Second) // the worker's timer fires
	waitFor(t, "restart 2 after 10s", func() bool { return h.rt.count("StartContainer c/2") == 1 })

	h.rt.exit(t, "c", 1)
	h.sync(pod)
	h.waitStatus(pod, "CrashLoopBackOff 20s", func(s corev1.PodStatus) bool {
		w := containerStatus(s, "c").State.Waiting
		return w != nil && strings.HasPrefix(w.Message, "back-off 20s") && containerStatus(s, "c").RestartCount == 2
	})
	if !h.status.hasEvent("BackOff", "Back-off restarting failed container c in pod crash_default(uid-crash)") {
		t.Error("no BackOff event")
	}
	// Garbage collection keeps the newest two attempts.
	waitFor(t, "gc of attempt 0", func() bool { return h.rt.count("RemoveContainer c/0") == 1 })

	// A container that ran ten minutes restarts without back-off.
	h.clock.Step(20 * time.Second)
	waitFor(t, "restart 3", func() bool { return h.rt.count("StartContainer c/3") == 1 })
	h.clock.Step(11 * time.Minute)
	h.rt.exit(t, "c", 1)
	h.sync(pod)
	waitFor(t, "restart 4 at once", func() bool { return h.rt.count("StartContainer c/4") == 1 })
}

func TestRestartPolicies(t *testing.T) {
	cases := []struct {
		policy    corev1.RestartPolicy
		code      int32
		restarted bool
		phase     corev1.PodPhase
	}{
		{corev1.RestartPolicyOnFailure, 0, false, corev1.PodSucceeded},
		{corev1.RestartPolicyOnFailure, 3, true, corev1.PodRunning},
		{corev1.RestartPolicyNever, 0, false, corev1.PodSucceeded},
		{corev1.RestartPolicyNever, 3, false, corev1.PodFailed},
		{corev1.RestartPolicyAlways, 0, true, corev1.PodRunning},
	}
	for _, tc := range cases {
		t.Run(string(tc.policy)+"-"+string(rune('0'+tc.code)), func(t *testing.T) {
			h := newHarness(t)
			pod := newPod("p", "c")
			pod.Spec.RestartPolicy = tc.policy
			h.start()
			h.apply(wire.OpInsert, pod)
			waitFor(t, "start", func() bool { return h.rt.count("StartContainer c/0") == 1 })
			h.rt.exit(t, "c", tc.code)
			h.sync(pod)
			if tc.restarted {
				waitFor(t, "restart", func() bool { return h.rt.count("StartContainer c/1") == 1 })
				return
			}
			st := h.waitStatus(pod, "phase "+string(tc.phase), func(s corev1.PodStatus) bool { return s.Phase == tc.phase })
			term := containerStatus(st, "c").State.Terminated
			if term == nil || term.ExitCode != tc.code {
				t.Errorf("state: %+v", containerStatus(st, "c").State)
			}
			waitFor(t, "sandbox stopped", func() bool { return h.rt.count("StopPodSandbox") == 1 })
			h.sync(pod)
			time.Sleep(20 * time.Millisecond)
			if h.rt.count("StartContainer c/1") != 0 {
				t.Error("restarted")
			}
		})
	}
}

func TestInitContainerFailureNeverFailsPod(t *testing.T) {
	h := newHarness(t)
	pod := newPod("p", "c")
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "img:1"}}
	h.start()
	h.apply(wire.OpInsert, pod)
	waitFor(t, "init", func() bool { return h.rt.count("StartContainer init/0") == 1 })
	h.rt.exit(t, "init", 1)
	h.sync(pod)
	h.waitStatus(pod, "failed", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodFailed })
	if h.rt.count("CreateContainer c") != 0 {
		t.Error("container started after a failed init container")
	}
}

func TestLivenessFailureRestarts(t *testing.T) {
	h := newHarness(t)
	pod := newPod("live", "c")
	h.start()
	h.apply(wire.OpInsert, pod)
	waitFor(t, "start", func() bool { return h.rt.count("StartContainer c/0") == 1 })
	id := h.rt.newest("c").id
	waitFor(t, "probing", func() bool { return h.prober.wasAdded(id) })
	h.prober.set(id, edged.ProbeState{Started: true, Unhealthy: true, Message: "HTTP probe failed with statuscode: 500"})
	h.sync(pod)
	waitFor(t, "restart", func() bool { return h.rt.count("StartContainer c/1") == 1 })
	if !h.status.hasEvent("Killing", "failed liveness probe") {
		t.Error("no Killing event")
	}
}

func TestDeletionWithGracePeriod(t *testing.T) {
	h := newHarness(t)
	pod := newPod("del", "c")
	grace := int64(45)
	pod.Spec.TerminationGracePeriodSeconds = &grace
	pod.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
	for _, ctl := range []string{"cpu,cpuacct", "memory"} {
		if err := os.MkdirAll(filepath.Join(h.cgroups, ctl, "kubepods", "poduid-del", "ctr1"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	h.apply(wire.OpInsert, pod)
	waitFor(t, "start", func() bool { return h.rt.count("StartContainer c/0") == 1 })
	id := h.rt.newest("c").id

	del := pod.DeepCopy()
	now := metav1.NewTime(h.clock.Now())
	seven := int64(7)
	del.DeletionTimestamp, del.DeletionGracePeriodSeconds = &now, &seven
	h.apply(wire.OpUpdate, del)
	waitFor(t, "PodDeleted", func() bool { return h.status.wasDeleted(pod.UID) })
	h.rt.mu.Lock()
	timeout := h.rt.stops[id]
	h.rt.mu.Unlock()
	if timeout != 7 {
		t.Errorf("StopContainer timeout %d, want 7", timeout)
	}
	h.hooks.mu.Lock()
	hooks := slices.Clone(h.hooks.calls)
	h.hooks.mu.Unlock()
	if len(hooks) != 1 || !hooks[0].preStop || hooks[0].containerID != id {
		t.Errorf("hooks: %+v", hooks)
	}
	calls := h.rt.callLog()
	idx := func(p string) int {
		return slices.IndexFunc(calls, func(c string) bool { return strings.HasPrefix(c, p) })
	}
	if !(idx("StopContainer") < idx("StopPodSandbox") && idx("StopPodSandbox") < idx("RemoveContainer") && idx("RemoveContainer") < idx("RemovePodSandbox")) {
		t.Errorf("teardown order: %q", calls)
	}
	if len(h.volumes.teardowns) != 1 {
		t.Errorf("volume teardowns: %v", h.volumes.teardowns)
	}
	if m, _ := filepath.Glob(filepath.Join(h.cgroups, "*", "kubepods", "pod*")); len(m) != 0 {
		t.Errorf("pod cgroups left: %v", m)
	}
	if _, err := os.Stat(filepath.Join(h.cgroups, "memory", "kubepods")); err != nil {
		t.Errorf("cgroup root removed: %v", err)
	}
	if !h.status.hasEvent("Killing", "Stopping container c") {
		t.Error("no Killing event")
	}
	// The cloud then removes it from the store: the worker ends.
	h.apply(wire.OpDelete, del)
	waitFor(t, "nothing left in the runtime", func() bool { return h.runtimeObjects() == 0 })
}

// runtimeObjects counts the fake runtime's sandboxes and containers.
func (h *harness) runtimeObjects() int {
	h.rt.mu.Lock()
	defer h.rt.mu.Unlock()
	return len(h.rt.sbs) + len(h.rt.ctrs)
}

func TestPodMovedAwayIsTornDownWithoutPodDeleted(t *testing.T) {
	h := newHarness(t)
	pod := newPod("moved", "c")
	h.start()
	h.apply(wire.OpInsert, pod)
	waitFor(t, "start", func() bool { return h.rt.count("StartContainer c/0") == 1 })
	h.apply(wire.OpDelete, pod)
	waitFor(t, "torn down", func() bool { return h.rt.count("RemovePodSandbox") == 1 })
	waitFor(t, "volumes torn down", func() bool {
		h.volumes.mu.Lock()
		defer h.volumes.mu.Unlock()
		return len(h.volumes.teardowns) == 1
	})
	if h.status.wasDeleted(pod.UID) {
		t.Error("PodDeleted for a pod without deletionTimestamp")
	}
}

func TestAdoptionAfterRestart(t *testing.T) {
	h := newHarness(t)
	pod := newPod("keep", "a", "b")
	h.start()
	h.apply(wire.OpInsert, pod)
	h.waitStatus(pod, "running", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodRunning && podReady(s) })
	ids := []string{h.rt.newest("a").id, h.rt.newest("b").id}
	h.stop()

	// While edged is down: an orphan pod's sandbox and container appear (its pod left the
	// store), and an old exited attempt of a.
	h.rt.mu.Lock()
	orphan := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "gone", Namespace: "default", Uid: "uid-gone"},
		Labels: map[string]string{edged.LabelPodUID: "uid-gone", edged.LabelPodName: "gone", edged.LabelPodNamespace: "default", edged.LabelNode: "edge-1"}}
	h.rt.sbs["sb-orphan"] = &fakeSandbox{id: "sb-orphan", cfg: orphan, state: runtimeapi.PodSandboxState_SANDBOX_READY}
	// Another node's pod on the same runtime is not ours to clean up.
	foreign := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "theirs", Namespace: "default", Uid: "uid-theirs"},
		Labels: map[string]string{edged.LabelPodUID: "uid-theirs", edged.LabelPodName: "theirs", edged.LabelPodNamespace: "default", edged.LabelNode: "edge-2"}}
	h.rt.sbs["sb-foreign"] = &fakeSandbox{id: "sb-foreign", cfg: foreign, state: runtimeapi.PodSandboxState_SANDBOX_READY}
	h.rt.ctrs["c-orphan"] = &fakeContainer{id: "c-orphan", sandbox: "sb-orphan", state: runtimeapi.ContainerState_CONTAINER_RUNNING,
		cfg: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "x"}, Labels: orphan.Labels, Image: &runtimeapi.ImageSpec{}}}
	h.rt.mu.Unlock()
	creates := h.rt.count("CreateContainer")

	h.prober = newFakeProber()
	h.status = newFakeStatus()
	h.start()
	st := h.waitStatus(pod, "running after restart", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodRunning && podReady(s) })
	waitFor(t, "orphan removed", func() bool { return h.rt.count("RemovePodSandbox sb-orphan") == 1 })
	if h.rt.count("StopPodSandbox sb-foreign")+h.rt.count("RemovePodSandbox sb-foreign") != 0 {
		t.Error("another node's sandbox was torn down")
	}
	if h.rt.count("CreateContainer") != creates || h.rt.count("RunPodSandbox") != 1 {
		t.Errorf("containers re-created after restart: %q", h.rt.callLog())
	}
	for i, name := range []string{"a", "b"} {
		if cs := containerStatus(st, name); cs.ContainerID != "containerd://"+ids[i] {
			t.Errorf("%s: %s, want %s", name, cs.ContainerID, ids[i])
		}
		if !h.prober.wasAdded(ids[i]) {
			t.Errorf("%s not re-registered with the prober", name)
		}
	}
}

func TestStartTimeAndConditionsStable(t *testing.T) {
	h := newHarness(t)
	pod := newPod("stable", "c")
	h.start()
	h.apply(wire.OpInsert, pod)
	st1 := h.waitStatus(pod, "running", func(s corev1.PodStatus) bool { return podReady(s) })
	h.clock.Step(time.Minute)
	h.sync(pod)
	time.Sleep(20 * time.Millisecond)
	st2, _ := h.status.get(pod.UID)
	if !st1.StartTime.Equal(st2.StartTime) || !st1.Conditions[3].LastTransitionTime.Equal(&st2.Conditions[3].LastTransitionTime) {
		t.Errorf("status changed without a change: %+v → %+v", st1, st2)
	}
}

func TestImagePullSecretsAndBackOff(t *testing.T) {
	h := newHarness(t)
	pod := newPod("priv", "c")
	img := "registry.example.com:5000/team/app:v1"
	pod.Spec.Containers[0].Image = img
	pod.Spec.Containers[0].ImagePullPolicy = ""
	pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "other"}, {Name: "regcred"}, {Name: "missing"}}
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	cfgJSON, _ := json.Marshal(map[string]any{"auths": map[string]any{"https://registry.example.com:5000/": map[string]string{"auth": auth}}})
	h.objects.secrets["default/regcred"] = &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: cfgJSON}}
	cfg, _ := json.Marshal(map[string]any{"quay.io": map[string]string{"username": "bob", "password": "x"}})
	h.objects.secrets["default/other"] = &corev1.Secret{Type: corev1.SecretTypeDockercfg, Data: map[string][]byte{corev1.DockerConfigKey: cfg}}
	h.rt.mu.Lock()
	h.rt.pullErr[img] = errors.New("connection refused")
	h.rt.mu.Unlock()

	h.start()
	h.apply(wire.OpInsert, pod)
	h.waitStatus(pod, "ErrImagePull", func(s corev1.PodStatus) bool {
		w := containerStatus(s, "c").State.Waiting
		return w != nil && w.Reason == reasonErrImagePull && s.Phase == corev1.PodPending
	})
	h.rt.mu.Lock()
	pull := h.rt.pulls[0]
	h.rt.mu.Unlock()
	if a := pull.Auth; a == nil || a.Username != "alice" || a.Password != "s3cret" || a.ServerAddress != "registry.example.com:5000" {
		t.Errorf("auth: %+v", pull.Auth)
	}
	if !h.status.hasEvent("FailedToRetrieveImagePullSecret", "missing") {
		t.Error("no event for the missing secret")
	}
	h.sync(pod)
	h.waitStatus(pod, "ImagePullBackOff", func(s corev1.PodStatus) bool {
		w := containerStatus(s, "c").State.Waiting
		return w != nil && w.Reason == reasonImagePullBackOff
	})
	if n := h.rt.count("PullImage"); n != 1 {
		t.Errorf("%d pulls during back-off", n)
	}
	h.rt.mu.Lock()
	delete(h.rt.pullErr, img)
	h.rt.mu.Unlock()
	h.clock.Step(10 * time.Second)
	h.waitStatus(pod, "running after back-off", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodRunning })
}

func TestRegistryMatching(t *testing.T) {
	cases := []struct {
		key, image string
		want       bool
	}{
		{"https://index.docker.io/v1/", "busybox", true},
		{"docker.io", "library/busybox:1", true},
		{"registry.example.com", "registry.example.com/a/b", true},
		{"*.example.com", "registry.example.com/a/b", true},
		{"registry.example.com/a", "registry.example.com/a/b", true},
		{"registry.example.com/c", "registry.example.com/a/b", false},
		{"registry.example.com:5000", "registry.example.com/a/b", false},
		{"quay.io", "registry.example.com/a", false},
	}
	for _, c := range cases {
		host, repo := registryHost(c.image)
		if got := registryMatches(c.key, host, repo); got != c.want {
			t.Errorf("registryMatches(%q, %q) = %v, want %v", c.key, c.image, got, c.want)
		}
	}
	for image, want := range map[string]corev1.PullPolicy{"busybox": corev1.PullAlways, "busybox:latest": corev1.PullAlways,
		"busybox:1.36": corev1.PullIfNotPresent, "127.0.0.1:5000/x": corev1.PullAlways, "x@sha256:abc": corev1.PullIfNotPresent} {
		if got := pullPolicy(&corev1.Container{Image: image}); got != want {
			t.Errorf("pullPolicy(%s) = %s, want %s", image, got, want)
		}
	}
}

func TestUnsupportedFieldFailsPod(t *testing.T) {
	h := newHarness(t)
	pod := newPod("eph", "c")
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox"}}}
	h.start()
	h.apply(wire.OpInsert, pod)
	st := h.waitStatus(pod, "failed", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodFailed })
	if !strings.Contains(st.Message, "spec.ephemeralContainers") || st.Reason == "" {
		t.Errorf("status: reason %q message %q", st.Reason, st.Message)
	}
	if h.rt.count("RunPodSandbox") != 0 {
		t.Error("sandbox created for a refused pod")
	}
	if !h.status.hasEvent("UnsupportedPodSpec", "spec.ephemeralContainers") {
		t.Error("no event naming the field")
	}

	// A volume Volumes refuses fails the pod the same way.
	h2 := newHarness(t)
	h2.volumes.setupErr = errors.Join(errors.New("spec.volumes[0].persistentVolumeClaim"), edged.ErrUnsupported)
	pod2 := newPod("pvc", "c")
	h2.start()
	h2.apply(wire.OpInsert, pod2)
	st = h2.waitStatus(pod2, "failed", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodFailed })
	if !strings.Contains(st.Message, "persistentVolumeClaim") {
		t.Errorf("message %q", st.Message)
	}
}

func TestQOSClass(t *testing.T) {
	mk := func(req, lim corev1.ResourceList) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}}}}
	}
	both := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	if q := qosClass(mk(nil, nil)); q != corev1.PodQOSBestEffort {
		t.Errorf("empty: %s", q)
	}
	if q := qosClass(mk(both, both)); q != corev1.PodQOSGuaranteed {
		t.Errorf("equal: %s", q)
	}
	if q := qosClass(mk(nil, both)); q != corev1.PodQOSGuaranteed {
		t.Errorf("limits only: %s", q)
	}
	if q := qosClass(mk(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}, nil)); q != corev1.PodQOSBurstable {
		t.Errorf("request only: %s", q)
	}
}

func TestConfigMapChangeResyncsPodsUsingIt(t *testing.T) {
	h := newHarness(t)
	pod := newPod("cm", "c")
	pod.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}}}}
	other := newPod("other", "c")
	h.start()
	h.apply(wire.OpInsert, pod)
	h.apply(wire.OpInsert, other)
	h.waitStatus(pod, "running", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodRunning })
	h.waitStatus(other, "running", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodRunning })
	time.Sleep(20 * time.Millisecond)
	h.volumes.mu.Lock()
	before := h.volumes.setups
	h.volumes.mu.Unlock()
	m := wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: wire.OpInsert, Resource: "default/configmap/settings"},
		[]byte(`{"metadata":{"name":"settings","namespace":"default","uid":"cm-1"},"data":{"a":"b"}}`))
	if err := h.db.ApplyMessage(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "exactly one resync", func() bool {
		h.volumes.mu.Lock()
		defer h.volumes.mu.Unlock()
		return h.volumes.setups == before+1
	})
	time.Sleep(20 * time.Millisecond)
	h.volumes.mu.Lock()
	defer h.volumes.mu.Unlock()
	if h.volumes.setups != before+1 {
		t.Errorf("setups %d, want %d (only the pod using the ConfigMap)", h.volumes.setups, before+1)
	}
}

func TestSandboxConfigHostNetworkAndDNS(t *testing.T) {
	h := newHarness(t)
	r, err := New(Config{Runtime: h.rt, Images: h.rt, Store: h.db, Volumes: h.volumes, Env: fakeEnv{}, Prober: h.prober,
		Hooks: h.hooks, Status: h.status, Objects: h.objects, PodsDir: h.podsDir, ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	pod := newPod("hn", "c")
	pod.Spec.HostNetwork, pod.Spec.HostPID = true, true
	pod.Spec.DNSPolicy = corev1.DNSNone
	ndots := "5"
	pod.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots}}}
	cfg, err := r.sandboxConfig(pod, 2)
	if err != nil {
		t.Fatal(err)
	}
	ns := cfg.Linux.SecurityContext.NamespaceOptions
	if cfg.Hostname != "" || ns.Network != runtimeapi.NamespaceMode_NODE || ns.Pid != runtimeapi.NamespaceMode_NODE || cfg.Metadata.Attempt != 2 {
		t.Errorf("config: %+v", cfg)
	}
	if !slices.Equal(cfg.DnsConfig.Servers, []string{"1.1.1.1"}) || !slices.Equal(cfg.DnsConfig.Options, []string{"ndots:5"}) {
		t.Errorf("dns: %+v", cfg.DnsConfig)
	}
}

func TestPodRecordedAsFinishedNeverRunsAgain(t *testing.T) {
	h := newHarness(t)
	pod := newPod("done", "c")
	pod.Status.Phase = corev1.PodFailed
	pod.Status.Reason = "UnsupportedPodSpec"
	pod.Status.Message = "Pod was rejected: spec.volumes[0].persistentVolumeClaim: not supported by this edge node"
	h.start()
	h.apply(wire.OpInsert, pod)
	st := h.waitStatus(pod, "failed", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodFailed })
	if st.Message != pod.Status.Message {
		t.Errorf("message %q, want the recorded one", st.Message)
	}
	if n := h.rt.count("RunPodSandbox"); n != 0 {
		t.Errorf("a pod Kubernetes recorded as finished got %d sandboxes", n)
	}
}
