//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
	"github.com/skerry-io/skerry/test/e2e/framework"
)

// The quickstart's fixed names (hack/quickstart.sh, manifests/quickstart/demo.yaml).
const (
	qsNode       = "edge-node"
	qsDMIDir     = "/run/skerry/quickstart/dmi"
	keadmManaged = "app.kubernetes.io/managed-by=keadm"
)

// qsStatus is what `make up` prints at the end, read back from its output.
type qsStatus struct {
	ready, pod, ip, greeting, temp1, temp2, setpoint string
}

var (
	qsNodeLine   = regexp.MustCompile(`(?m)^\s*node\s+edge-node\s+Ready=(\S+)`)
	qsPodLine    = regexp.MustCompile(`(?m)^\s*pod\s+demo/(\S+)\s+Running, IP (\S+)`)
	qsCurlLine   = regexp.MustCompile(`(?m)^\s*curl http://(\S+):8080/\s+->\s+"([^"]*)"`)
	qsDeviceLine = regexp.MustCompile(`(?m)^\s*device\s+demo/thermostat\s+temperature (\S+) -> (\S+) °C \(changing\), setpoint (\S+) \(desired 22\)`)
)

func parseQuickstartStatus(t *testing.T, out string) qsStatus {
	t.Helper()
	var s qsStatus
	m := qsNodeLine.FindStringSubmatch(out)
	p := qsPodLine.FindStringSubmatch(out)
	c := qsCurlLine.FindStringSubmatch(out)
	d := qsDeviceLine.FindStringSubmatch(out)
	if m == nil || p == nil || c == nil || d == nil {
		t.Fatalf("the quickstart's status is missing a line (node %v, pod %v, curl %v, device %v):\n%s", m != nil, p != nil, c != nil, d != nil, out)
	}
	s.ready, s.pod, s.ip = m[1], p[1], p[2]
	if c[1] != s.ip {
		t.Errorf("the status curls %s, but names pod IP %s", c[1], s.ip)
	}
	s.greeting = c[2]
	s.temp1, s.temp2, s.setpoint = d[1], d[2], d[3]
	return s
}

// quickstart runs hack/quickstart.sh with args and returns its combined output.
func quickstart(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(env.Root, "hack", "quickstart.sh"), args...)
	cmd.Dir = env.Root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("hack/quickstart.sh %s (%v):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Second), out.String())
	if err != nil {
		t.Fatalf("hack/quickstart.sh %s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}

var deviceStatusGVR = schema.GroupVersionResource{Group: "devices.kubeedge.io", Version: "v1beta1", Resource: "devicestatuses"}

func reportedTwin(ctx context.Context, prop string) (string, error) {
	u, err := env.Dynamic.Resource(deviceStatusGVR).Namespace("demo").Get(ctx, "thermostat", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	twins, _, _ := unstructured.NestedSlice(u.Object, "status", "twins")
	for _, tw := range twins {
		m, _ := tw.(map[string]any)
		if m["propertyName"] == prop {
			v, _, _ := unstructured.NestedString(m, "reported", "value")
			return v, nil
		}
	}
	return "", fmt.Errorf("no twin %q in %v", prop, twins)
}

// TestQuickstart runs the path `make up` takes (keadm init --mode process, gettoken, join, the
// demo) and checks every claim the status prints against the cluster, the pod and the device;
// runs it again (init twice and join twice are safe); checks that `keadm init --dry-run` output
// applies with server-side dry run; then `make down`'s path without stopping the control plane,
// and that nothing it created is left: process, file, runtime pod, cgroup or cluster object.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	for _, bin := range []string{"keadm", "cloudcore", "edgecore"} {
		if _, err := os.Stat(filepath.Join(env.Root, "_output", "bin", bin)); err != nil {
			t.Fatalf("%v: run `make build` first", err)
		}
	}
	downed := false
	t.Cleanup(func() {
		if !downed {
			dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer dcancel()
			cmd := exec.CommandContext(dctx, filepath.Join(env.Root, "hack", "quickstart.sh"), "down", "--keep-cluster")
			cmd.Dir = env.Root
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("cleanup: quickstart down: %v\n%s", err, out)
			}
		}
	})

	out := quickstart(t, ctx, "up")
	st := parseQuickstartStatus(t, out)

	// Each printed claim, checked independently.
	if st.ready != "True" {
		t.Errorf("status prints Ready=%s", st.ready)
	}
	node, err := env.Kube.CoreV1().Nodes().Get(ctx, qsNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !nodeReady(node) {
		t.Errorf("node %s is not Ready: %v", qsNode, node.Status.Conditions)
	}
	pod, err := env.Kube.CoreV1().Pods("demo").Get(ctx, st.pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP != st.ip || pod.Spec.NodeName != qsNode {
		t.Errorf("pod %s: phase %s, IP %s, node %s; the status said Running, %s, %s", st.pod, pod.Status.Phase, pod.Status.PodIP, pod.Spec.NodeName, st.ip, qsNode)
	}
	body, err := httpGet(ctx, "http://"+st.ip+":8080/")
	if err != nil {
		t.Fatal(err)
	}
	if st.greeting == "" || !strings.Contains(body, st.greeting) {
		t.Errorf("GET http://%s:8080/ does not show %q:\n%s", st.ip, st.greeting, body)
	}
	if st.temp1 == st.temp2 {
		t.Errorf("status says the temperature changed but prints %s -> %s", st.temp1, st.temp2)
	}
	first, err := reportedTwin(ctx, "temperature")
	if err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, time.Minute, "the thermostat's temperature to change in DeviceStatus", func(ctx context.Context) (bool, error) {
		v, err := reportedTwin(ctx, "temperature")
		return err == nil && v != "" && v != first, err
	})
	if v, err := reportedTwin(ctx, "setpoint"); err != nil || v != "22" || st.setpoint != "22" {
		t.Errorf("setpoint reported %q (%v), printed %q; desired 22", v, err, st.setpoint)
	}

	// Again: init twice and join twice are safe, and the demo keeps running.
	out2 := quickstart(t, ctx, "up")
	st2 := parseQuickstartStatus(t, out2)
	if st2.pod != st.pod || st2.ip != st.ip {
		t.Errorf("the second `up` changed the demo pod: %s/%s -> %s/%s", st.pod, st.ip, st2.pod, st2.ip)
	}

	// keadm init --dry-run prints manifests that the API server accepts.
	keadm := filepath.Join(env.Root, "_output", "bin", "keadm")
	for _, mode := range []string{"process", "cluster"} {
		dry := exec.CommandContext(ctx, keadm, "init", "--dry-run", "--mode", mode, "--kubeconfig", env.Kubeconfig,
			"--advertise-address", "127.0.0.1", "--set", "hub.quic.enable=true")
		var manifests, stderr bytes.Buffer
		dry.Stdout, dry.Stderr = &manifests, &stderr
		if err := dry.Run(); err != nil {
			t.Fatalf("keadm init --dry-run --mode %s: %v\n%s", mode, err, stderr.String())
		}
		apply := exec.CommandContext(ctx, env.Kubectl, "--kubeconfig", env.Kubeconfig, "apply", "--dry-run=server", "-f", "-")
		apply.Stdin = bytes.NewReader(manifests.Bytes())
		if res, err := apply.CombinedOutput(); err != nil {
			t.Errorf("keadm init --dry-run --mode %s output does not apply with --dry-run=server: %v\n%s\nmanifests:\n%s", mode, err, res, manifests.String())
		}
	}

	// What exists now, to check that down removes it.
	podUIDs := map[string]bool{}
	pods, err := env.Kube.CoreV1().Pods("demo").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		podUIDs[string(p.UID)] = true
	}

	quickstart(t, ctx, "down", "--keep-cluster")
	downed = true

	// No process of the quickstart is left.
	if procs := processesMentioning(t, filepath.Join(env.Root, "_output", "quickstart")); len(procs) > 0 {
		t.Errorf("processes left after down: %v", procs)
	}
	// No file it created.
	for _, p := range []string{"cloud", "edge", "state"} {
		if _, err := os.Stat(filepath.Join(env.Root, "_output", "quickstart", p)); !os.IsNotExist(err) {
			t.Errorf("_output/quickstart/%s left after down (%v)", p, err)
		}
	}
	if _, err := os.Stat(qsDMIDir); !os.IsNotExist(err) {
		t.Errorf("%s left after down (%v)", qsDMIDir, err)
	}
	// No runtime pod of the node, no pod cgroup.
	sbs, err := env.CRI.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{edged.LabelNode: qsNode}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(sbs.Items) > 0 {
		t.Errorf("%d pod sandboxes of %s left in the runtime", len(sbs.Items), qsNode)
	}
	for uid := range podUIDs {
		if m, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods/pod" + uid); len(m) > 0 {
			t.Errorf("pod cgroups left: %v", m)
		}
	}
	// No cluster object: the demo, the node, and nothing keadm labelled as its own.
	if _, err := env.Kube.CoreV1().Namespaces().Get(ctx, "demo", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace demo after down: %v", err)
	}
	if _, err := env.Kube.CoreV1().Nodes().Get(ctx, qsNode, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node %s after down: %v", qsNode, err)
	}
	res, err := env.RunKubectl(ctx, "get", "namespaces,customresourcedefinitions,clusterroles,clusterrolebindings,mutatingwebhookconfigurations",
		"-l", keadmManaged, "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(res) != "" {
		t.Errorf("objects labelled %s left after down:\n%s", keadmManaged, res)
	}
	if res, err := env.RunKubectl(ctx, "get", "all,configmaps,serviceaccounts,roles,rolebindings", "-A", "-l", keadmManaged, "-o", "name"); err != nil || strings.TrimSpace(res) != "" {
		t.Errorf("namespaced objects labelled %s left after down (%v):\n%s", keadmManaged, err, res)
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// processesMentioning lists live processes whose command line contains s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(s)) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join(d, "stat")); err == nil {
			if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) > 0 && f[0] == "Z" {
				continue // a zombie holds nothing
			}
		}
		found = append(found, filepath.Base(d)+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return found
}

// TestKeadmInitClusterMode installs cloudcore as a Deployment for real. The local cluster has
// no worker node, so the pod cannot be scheduled: init must say so and fail within its
// timeout, having applied its objects; a second init changes nothing; reset cloud removes
// every object keadm labelled.
func TestKeadmInitClusterMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	keadm := filepath.Join(env.Root, "_output", "bin", "keadm")
	dirs := []string{"--state-dir", filepath.Join(t.TempDir(), "state"), "--config-dir", filepath.Join(t.TempDir(), "config")}
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, keadm, append(args, "--kubeconfig", env.Kubeconfig)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	reset := func() {
		if out, err := run(append([]string{"reset", "cloud"}, dirs...)...); err != nil {
			t.Fatalf("keadm reset cloud: %v\n%s", err, out)
		}
	}
	t.Cleanup(func() {
		if _, err := env.Kube.AppsV1().Deployments("kubeedge").Get(context.Background(), "cloudcore", metav1.GetOptions{}); err == nil {
			reset()
		}
	})
	initArgs := append([]string{"init", "--mode", "cluster", "--advertise-address", "127.0.0.1", "--timeout", "10s",
		"--set", "hub.quic.enable=true"}, dirs...)
	out, err := run(initArgs...)
	if err == nil || !strings.Contains(out, "--mode process") {
		t.Fatalf("keadm init --mode cluster on a cluster without workers: err %v, want a failure that points to --mode process:\n%s", err, out)
	}
	dep, err := env.Kube.AppsV1().Deployments("kubeedge").Get(ctx, "cloudcore", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("init applied no Deployment: %v\n%s", err, out)
	}
	if dep.Labels["app.kubernetes.io/managed-by"] != "keadm" {
		t.Errorf("Deployment labels %v", dep.Labels)
	}
	if _, err := env.Kube.CoreV1().Services("kubeedge").Get(ctx, "cloudcore", metav1.GetOptions{}); err != nil {
		t.Errorf("init applied no Service: %v", err)
	}
	cms, err := env.Kube.CoreV1().ConfigMaps("kubeedge").List(ctx, metav1.ListOptions{LabelSelector: keadmManaged})
	if err != nil || len(cms.Items) != 1 {
		t.Fatalf("keadm ConfigMaps: %v %v", cms, err)
	}
	cfg := cms.Items[0]
	for _, want := range []string{"127.0.0.1", "quic"} {
		var all string
		for _, v := range cfg.Data {
			all += v
		}
		if !strings.Contains(all, want) {
			t.Errorf("cloudcore's ConfigMap does not carry %q:\n%s", want, all)
		}
	}

	// Twice: the same failure, nothing rewritten.
	if out, err := run(initArgs...); err == nil || !strings.Contains(out, "--mode process") {
		t.Errorf("second init: err %v\n%s", err, out)
	}
	cfg2, err := env.Kube.CoreV1().ConfigMaps("kubeedge").Get(ctx, cfg.Name, metav1.GetOptions{})
	if err != nil || cfg2.ResourceVersion != cfg.ResourceVersion {
		t.Errorf("the second init rewrote ConfigMap %s (%v)", cfg.Name, err)
	}
	dep2, err := env.Kube.AppsV1().Deployments("kubeedge").Get(ctx, "cloudcore", metav1.GetOptions{})
	if err != nil || dep2.Generation != dep.Generation {
		t.Errorf("the second init changed the Deployment's spec (generation %d -> %d, %v)", dep.Generation, dep2.Generation, err)
	}

	reset()
	res, err := env.RunKubectl(ctx, "get", "all,configmaps,serviceaccounts,roles,rolebindings", "-A", "-l", keadmManaged, "-o", "name")
	if err != nil || strings.TrimSpace(res) != "" {
		t.Errorf("objects labelled %s left after reset cloud (%v):\n%s", keadmManaged, err, res)
	}
	if res, err := env.RunKubectl(ctx, "get", "clusterroles,clusterrolebindings,customresourcedefinitions,namespaces", "-l", keadmManaged, "-o", "name"); err != nil || strings.TrimSpace(res) != "" {
		t.Errorf("cluster objects labelled %s left after reset cloud (%v):\n%s", keadmManaged, err, res)
	}
}
