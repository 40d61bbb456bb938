//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/test/e2e/framework"
)

var lifeCloud = cloudAddrs{hub: "127.0.0.1:27000", bootstrap: "127.0.0.1:27002", admission: "127.0.0.1:27005", admin: "127.0.0.1:27006"}

const lifeNode = "life-a"

// TestEdgedPodLifecycle covers what TestEdged and TestEdgedPodSpec leave out, on the real
// runtime: tcpSocket, grpc and httpGet probes; securityContext (privileged, capabilities,
// readOnlyRootFilesystem, allowPrivilegeEscalation); termination messages from the file and
// from the log; a changed image replacing the running container; readiness gates; and a
// containerd restart, after which pods run on with the same containers and new ones start.
func TestEdgedPodLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	startCloud(t, dir, lifeCloud)
	newEdge(t, dir, lifeNode, lifeCloud, "127.0.0.1:20555",
		"edged:\n  server: {address: 127.0.0.1:20353}\n  relistPeriod: 1s\nnode: {statusUpdateFrequency: 2s}\n")
	t.Cleanup(func() {
		_ = env.Kube.CoreV1().Nodes().Delete(context.Background(), lifeNode, metav1.DeleteOptions{})
		_ = env.Kube.CoordinationV1().Leases("kube-node-lease").Delete(context.Background(), lifeNode, metav1.DeleteOptions{})
		_ = env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), "autonomy.pods.skerry.io", metav1.DeleteOptions{})
	})
	waitNodeReady(t, lifeNode)
	ns := "e2e-life-" + fmt.Sprint(time.Now().UnixNano()%1_000_000)
	must[*corev1.Namespace](t)(env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	t.Cleanup(func() { _ = env.Kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	create := func(p *corev1.Pod) {
		t.Helper()
		p.Spec.NodeName = lifeNode
		p.Spec.AutomountServiceAccountToken = ptr(false)
		if p.Spec.TerminationGracePeriodSeconds == nil {
			p.Spec.TerminationGracePeriodSeconds = ptr(int64(2))
		}
		must[*corev1.Pod](t)(env.Kube.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}))
	}

	// Probes of every handler kind on the demo app (HTTP on 8080, gRPC health on 9090), and a
	// readiness probe that never succeeds.
	demo := corev1.Container{Name: "main", Image: demoImage, Env: []corev1.EnvVar{{Name: "GRPC_PORT", Value: "9090"}},
		StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1, FailureThreshold: 30},
		LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 2, TimeoutSeconds: 1},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090}}, PeriodSeconds: 1},
	}
	create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probes"}, Spec: corev1.PodSpec{Containers: []corev1.Container{demo}}})
	never := corev1.Container{Name: "main", Image: demoImage,
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9999)}}, PeriodSeconds: 1}}
	create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "unready"}, Spec: corev1.PodSpec{Containers: []corev1.Container{never}}})

	// securityContext, checked from inside.
	sleep := []string{"sleep", "3600"}
	create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "secctx"}, Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "narrow", Image: busyboxLocal, Command: sleep, SecurityContext: &corev1.SecurityContext{
			Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}},
			ReadOnlyRootFilesystem:   ptr(true),
			AllowPrivilegeEscalation: ptr(false),
		}},
		{Name: "privileged", Image: busyboxLocal, Command: sleep, SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)}},
	}}})

	// Termination messages: from the file, and from the log on error.
	create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bye"}, Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{
		{Name: "file", Image: busyboxLocal, Command: []string{"sh", "-c", "echo farewell > /dev/termination-log; exit 3"}},
		{Name: "logs", Image: busyboxLocal, Command: []string{"sh", "-c", "echo from-logs; exit 4"},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError},
	}}})

	// Readiness gates, and a pod whose image will change.
	create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gated"}, Spec: corev1.PodSpec{
		ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "example.com/ready"}},
		Containers:     []corev1.Container{{Name: "main", Image: busyboxLocal, Command: sleep}}}})
	create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "img"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: busyboxLocal, Command: sleep}}}})

	getPod := func(ctx context.Context, name string) (*corev1.Pod, error) {
		return env.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	}
	waitPod := func(name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
		t.Helper()
		var p *corev1.Pod
		framework.Eventually(t, 2*time.Minute, name+": "+what, func(ctx context.Context) (bool, error) {
			var err error
			if p, err = getPod(ctx, name); err != nil {
				return false, err
			}
			return cond(p), fmt.Errorf("phase %s conditions %+v containers %+v", p.Status.Phase, p.Status.Conditions, p.Status.ContainerStatuses)
		})
		return p
	}

	// Probes.
	p := waitPod("probes", "ready through grpc, started through httpGet", func(p *corev1.Pod) bool {
		return podCondition(p, corev1.PodReady) == corev1.ConditionTrue
	})
	if cs := p.Status.ContainerStatuses[0]; cs.Started == nil || !*cs.Started || cs.RestartCount != 0 {
		t.Errorf("probes: %+v", cs)
	}
	waitPod("unready", "running, not ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && podCondition(p, corev1.ContainersReady) == corev1.ConditionFalse &&
			len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})
	framework.Eventually(t, time.Minute, "Unhealthy event for the tcpSocket readiness probe", func(ctx context.Context) (bool, error) {
		evs, err := env.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=unready,reason=Unhealthy"})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if strings.Contains(e.Message, "Readiness probe failed") {
				return true, nil
			}
		}
		return false, fmt.Errorf("%d Unhealthy events", len(evs.Items))
	})

	// securityContext.
	waitPod("secctx", "running", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	narrow, priv := containerOf(t, ns, "secctx", "narrow"), containerOf(t, ns, "secctx", "privileged")
	for _, c := range []struct{ what, id, cmd, want string }{
		{"capabilities: only NET_ADMIN", narrow, "grep CapEff /proc/self/status | cut -f2", "0000000000001000"},
		{"allowPrivilegeEscalation false sets no_new_privs", narrow, "grep NoNewPrivs /proc/self/status | cut -f2", "1"},
		{"readOnlyRootFilesystem", narrow, "touch /x 2>/dev/null && echo writable || echo read-only", "read-only"},
		{"privileged sees host devices", priv, "test -e /dev/kmsg && echo yes", "yes"},
	} {
		if got := criSh(t, c.id, c.cmd); got != c.want {
			t.Errorf("%s: %q gave %q, want %q", c.what, c.cmd, got, c.want)
		}
	}
	if got := criSh(t, priv, "grep CapEff /proc/self/status | cut -f2"); strings.Trim(got, "0") == "1000" || got == "" {
		t.Errorf("privileged container's capabilities %q", got)
	}

	// Termination messages.
	p = waitPod("bye", "failed with both containers terminated", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodFailed && len(p.Status.ContainerStatuses) == 2 &&
			p.Status.ContainerStatuses[0].State.Terminated != nil && p.Status.ContainerStatuses[1].State.Terminated != nil
	})
	for _, cs := range p.Status.ContainerStatuses {
		want := map[string]string{"file": "farewell\n", "logs": "from-logs\n"}[cs.Name]
		if got := cs.State.Terminated.Message; got != want {
			t.Errorf("%s: termination message %q, want %q", cs.Name, got, want)
		}
	}

	// Readiness gates: not Ready until the gate's condition is True.
	p = waitPod("gated", "containers ready, gate unmet", func(p *corev1.Pod) bool {
		return podCondition(p, corev1.ContainersReady) == corev1.ConditionTrue && podCondition(p, corev1.PodReady) == corev1.ConditionFalse
	})
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: "example.com/ready", Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
	must[*corev1.Pod](t)(env.Kube.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}))
	waitPod("gated", "ready once the gate is met", func(p *corev1.Pod) bool { return podCondition(p, corev1.PodReady) == corev1.ConditionTrue })

	// A changed image replaces the container (the same image under its docker.io name).
	p = waitPod("img", "running", func(p *corev1.Pod) bool { return podCondition(p, corev1.PodReady) == corev1.ConditionTrue })
	oldID := p.Status.ContainerStatuses[0].ContainerID
	patch := fmt.Sprintf(`{"spec":{"containers":[{"name":"main","image":%q}]}}`, busyboxDocker)
	must[*corev1.Pod](t)(env.Kube.CoreV1().Pods(ns).Patch(ctx, "img", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}))
	waitPod("img", "restarted with the new image", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses[0]
		return cs.Image == busyboxDocker && cs.RestartCount == 1 && cs.ContainerID != oldID && cs.State.Running != nil &&
			podCondition(p, corev1.PodReady) == corev1.ConditionTrue
	})

	// containerd restarts (killed, as in a crash): the node goes not Ready while it is away,
	// running pods keep their containers, and afterwards new pods start and crashed ones
	// restart.
	before := containerOf(t, ns, "probes", "main")
	restartContainerd(t)
	framework.Eventually(t, 2*time.Minute, "node Ready again after the containerd restart", func(ctx context.Context) (bool, error) {
		n, err := env.Kube.CoreV1().Nodes().Get(ctx, lifeNode, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, fmt.Errorf("Ready %s: %s", c.Status, c.Message)
			}
		}
		return false, nil
	})
	if after := containerOf(t, ns, "probes", "main"); after != before {
		t.Errorf("the probes pod's container changed across the containerd restart: %s → %s", before, after)
	}
	create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "after"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "main", Image: busyboxLocal, Command: sleep}}}})
	waitPod("after", "a new pod runs after the restart", func(p *corev1.Pod) bool { return podCondition(p, corev1.PodReady) == corev1.ConditionTrue })
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := env.CRI.StopContainer(stopCtx, &runtimeapi.StopContainerRequest{ContainerId: before, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	waitPod("probes", "restarted and ready after its container was stopped", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses[0]
		return cs.RestartCount == 1 && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
	})
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

// criSh runs a shell command in a container through CRI and returns its trimmed output.
func criSh(t *testing.T, id, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := env.CRI.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", cmd}, Timeout: 10})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	return strings.TrimSpace(string(r.Stdout) + string(r.Stderr))
}

// restartContainerd kills containerd as a crash would (its shims and containers live on) and
// starts it again with the runtime script, which waits until CRI answers.
func restartContainerd(t *testing.T) {
	t.Helper()
	pidfile := filepath.Join(env.Root, "_output", "runtime", "pids", "containerd.pid")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("containerd pid file: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill containerd: %v", err)
	}
	framework.Eventually(t, 30*time.Second, "containerd gone", func(context.Context) (bool, error) {
		// Gone or a zombie: nothing here may reap it (its parent was a script long done).
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true, nil
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		return len(f) > 0 && f[0] == "Z", fmt.Errorf("state %v", f[:1])
	})
	if err := env.RuntimeUp(context.Background(), os.Stderr); err != nil {
		t.Fatalf("restarting containerd: %v", err)
	}
}
