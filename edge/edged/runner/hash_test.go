package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skerry-io/skerry/pkg/wire"
)

func TestContainerHashIgnoresResources(t *testing.T) {
	a := corev1.Container{Name: "c", Image: "busybox:1"}
	b := a
	b.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
	if containerHash(&a) != containerHash(&b) {
		t.Error("a resize changes the hash")
	}
	b.Image = "busybox:2"
	if containerHash(&a) == containerHash(&b) {
		t.Error("an image change keeps the hash")
	}
}

// TestImageChangeRestartsContainer: a new image replaces the running container at once,
// whatever the restart policy, and the other container keeps running.
func TestImageChangeRestartsContainer(t *testing.T) {
	h := newHarness(t)
	pod := newPod("img", "a", "b")
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	h.start()
	h.apply(wire.OpInsert, pod)
	h.waitStatus(pod, "running", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodRunning && podReady(s) })
	keep := h.rt.newest("b").id

	up := pod.DeepCopy()
	up.ResourceVersion = "2"
	up.Spec.Containers[0].Image = "127.0.0.1:5000/library/busybox:1.37"
	h.apply(wire.OpUpdate, up)
	waitFor(t, "a restarted with the new image", func() bool { return h.rt.count("StartContainer a/1") == 1 })
	if got := h.rt.newest("a").cfg.Image.UserSpecifiedImage; got != up.Spec.Containers[0].Image {
		t.Errorf("image %q", got)
	}
	if h.rt.newest("b").id != keep || h.rt.count("StartContainer b/1") != 0 {
		t.Error("the unchanged container was restarted")
	}
	if !h.status.hasEvent("Killing", "Container a definition changed, will be restarted") {
		t.Error("no Killing event naming the change")
	}
}

// TestCrashBackoffSurvivesRestart: after an edgecore restart a crash-looping container waits
// out the delay its attempt number implies instead of restarting at once.
func TestCrashBackoffSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	pod := newPod("loop", "c")
	h.start()
	h.apply(wire.OpInsert, pod)
	waitFor(t, "first start", func() bool { return h.rt.count("StartContainer c/0") == 1 })
	h.rt.exit(t, "c", 1)
	h.sync(pod)
	waitFor(t, "restart 1", func() bool { return h.rt.count("StartContainer c/1") == 1 })
	h.rt.exit(t, "c", 1)
	h.sync(pod)
	h.clock.Step(10 * time.Second)
	waitFor(t, "restart 2", func() bool { return h.rt.count("StartContainer c/2") == 1 })
	h.stop()

	// Attempt 2 exits while edgecore is down: its delay is 20 s.
	h.rt.exit(t, "c", 1)
	h.status = newFakeStatus()
	h.start()
	st := h.waitStatus(pod, "back-off after restart", func(s corev1.PodStatus) bool {
		w := containerStatus(s, "c").State.Waiting
		return w != nil && w.Reason == reasonCrashLoopBackOff
	})
	if msg := containerStatus(st, "c").State.Waiting.Message; !strings.HasPrefix(msg, "back-off 20s") {
		t.Errorf("waiting message %q, want the 20s step", msg)
	}
	if h.rt.count("StartContainer c/3") != 0 {
		t.Fatal("restarted at once after an edgecore restart")
	}
	h.clock.Step(20 * time.Second)
	waitFor(t, "restart 3 after 20s", func() bool { return h.rt.count("StartContainer c/3") == 1 })
}

func TestBackoffSeed(t *testing.T) {
	b := newBackoff(nil, 10*time.Second, 5*time.Minute)
	at := time.Unix(100, 0)
	for _, c := range []struct {
		steps uint32
		want  time.Duration
	}{{1, 10 * time.Second}, {2, 20 * time.Second}, {5, 160 * time.Second}, {6, 5 * time.Minute}, {40, 5 * time.Minute}} {
		b.reset("k")
		b.seed("k", at, c.steps)
		if e := b.entries["k"]; e == nil || e.delay != c.want {
			t.Errorf("steps %d: %+v, want %s", c.steps, e, c.want)
		}
	}
	b.reset("k")
	b.seed("k", at, 0)
	if b.entries["k"] != nil {
		t.Error("no steps taken, yet seeded")
	}
}

// TestReadinessGates: Ready waits for the gate's condition, set in the cloud and synced down.
func TestReadinessGates(t *testing.T) {
	h := newHarness(t)
	pod := newPod("gated", "c")
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}}
	h.start()
	h.apply(wire.OpInsert, pod)
	st := h.waitStatus(pod, "containers ready, pod not", func(s corev1.PodStatus) bool {
		return s.Phase == corev1.PodRunning && condition(s, corev1.ContainersReady) == corev1.ConditionTrue
	})
	if c := findCondition(st, corev1.PodReady); c == nil || c.Status != corev1.ConditionFalse || c.Reason != "ReadinessGatesNotReady" ||
		c.Message != `corresponding condition of pod readiness gate "example.com/lb" does not exist.` {
		t.Fatalf("Ready: %+v", c)
	}
	up := pod.DeepCopy()
	up.ResourceVersion = "2"
	up.Status.Conditions = []corev1.PodCondition{{Type: "example.com/lb", Status: corev1.ConditionTrue}}
	h.apply(wire.OpUpdate, up)
	h.waitStatus(pod, "ready once the gate is met", func(s corev1.PodStatus) bool { return podReady(s) })
}

func findCondition(s corev1.PodStatus, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			return &s.Conditions[i]
		}
	}
	return nil
}

func condition(s corev1.PodStatus, t corev1.PodConditionType) corev1.ConditionStatus {
	if c := findCondition(s, t); c != nil {
		return c.Status
	}
	return ""
}

// TestTerminationMessage: the file mounted at terminationMessagePath becomes the terminated
// state's message; FallbackToLogsOnError takes the log's end when the file is empty.
func TestTerminationMessage(t *testing.T) {
	h := newHarness(t)
	pod := newPod("last-words", "file", "logs")
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.Containers[0].TerminationMessagePath = "/dev/termination-log"
	pod.Spec.Containers[1].TerminationMessagePath = "/dev/termination-log"
	pod.Spec.Containers[1].TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	h.start()
	h.apply(wire.OpInsert, pod)
	h.waitStatus(pod, "running", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodRunning })

	var hostFile string
	for _, m := range h.rt.newest("file").cfg.Mounts {
		if m.ContainerPath == "/dev/termination-log" {
			hostFile = m.HostPath
		}
	}
	if hostFile == "" {
		t.Fatal("no termination-log mount")
	}
	if fi, err := os.Stat(hostFile); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("termination file: %v %v", fi, err)
	}
	if err := os.WriteFile(hostFile, []byte(strings.Repeat("x", 5000)), 0o666); err != nil {
		t.Fatal(err)
	}
	// The other container wrote nothing to its file but logged before failing.
	logDir := filepath.Join(h.podsDir, "uid-last-words", "logs")
	logFile := filepath.Join(logDir, h.rt.newest("logs").cfg.LogPath)
	if err := os.MkdirAll(filepath.Dir(logFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logFile, []byte("2026-01-02T03:04:05Z stdout F starting\n2026-01-02T03:04:06Z stderr P boom: \n2026-01-02T03:04:06Z stderr F disk full\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.rt.exit(t, "file", 0)
	h.rt.exit(t, "logs", 3)
	h.sync(pod)
	st := h.waitStatus(pod, "both terminated", func(s corev1.PodStatus) bool {
		return containerStatus(s, "file").State.Terminated != nil && containerStatus(s, "logs").State.Terminated != nil
	})
	if msg := containerStatus(st, "file").State.Terminated.Message; msg != strings.Repeat("x", maxTerminationMessage) {
		t.Errorf("file message: %d bytes", len(msg))
	}
	if msg := containerStatus(st, "logs").State.Terminated.Message; msg != "starting\nboom: disk full\n" {
		t.Errorf("log fallback message %q", msg)
	}
}
