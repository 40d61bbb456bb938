//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/test/e2e/framework"
)

var podSpecCloud = cloudAddrs{hub: "127.0.0.1:26000", bootstrap: "127.0.0.1:26002", admission: "127.0.0.1:26005", admin: "127.0.0.1:26006"}

const podSpecNode = "podspec-a"

// TestEdgedPodSpec runs one pod that uses most of the pod spec Edged covers and checks each
// field from inside the running container: init containers, env and envFrom of every kind,
// resources and QoS, every supported volume type, securityContext, hooks, hostAliases and
// dnsConfig, the service-account token, then a ConfigMap update and the preStop hook.
func TestEdgedPodSpec(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	startCloud(t, dir, podSpecCloud)
	newEdge(t, dir, podSpecNode, podSpecCloud, "127.0.0.1:20554",
		"edged:\n  server: {address: 127.0.0.1:20352}\n  relistPeriod: 1s\nnode: {statusUpdateFrequency: 2s}\n")
	t.Cleanup(func() {
		_ = env.Kube.CoreV1().Nodes().Delete(context.Background(), podSpecNode, metav1.DeleteOptions{})
		_ = env.Kube.CoordinationV1().Leases("kube-node-lease").Delete(context.Background(), podSpecNode, metav1.DeleteOptions{})
		_ = env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), "autonomy.pods.skerry.io", metav1.DeleteOptions{})
	})
	waitNodeReady(t, podSpecNode)

	ns := "e2e-podspec-" + fmt.Sprint(time.Now().UnixNano()%1_000_000)
	must[*corev1.Namespace](t)(env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	t.Cleanup(func() { _ = env.Kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	framework.Eventually(t, 60*time.Second, "default service account", func(ctx context.Context) (bool, error) {
		_, err := env.Kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
	must[*corev1.ConfigMap](t)(env.Kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"k": "cm-one", "extra": "x"}}, metav1.CreateOptions{}))
	must[*corev1.Secret](t)(env.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sec"}, StringData: map[string]string{"k": "s3cret"}}, metav1.CreateOptions{}))
	// A host directory the pod's user may write to (type Directory checks it exists), and one
	// the pod makes (DirectoryOrCreate).
	hostDir, createdDir := filepath.Join(dir, "hostpath"), filepath.Join(dir, "created-by-pod")
	if err := os.MkdirAll(hostDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(hostDir, 0o777); err != nil {
		t.Fatal(err)
	}

	pod := specPod(hostDir, createdDir)
	must[*corev1.Pod](t)(env.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}))
	framework.Eventually(t, 2*time.Minute, "pod running", func(ctx context.Context) (bool, error) {
		p, err := env.Kube.CoreV1().Pods(ns).Get(ctx, "spec", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.Phase == corev1.PodRunning, fmt.Errorf("phase %s: %s %+v", p.Status.Phase, p.Status.Message, p.Status.ContainerStatuses)
	})
	p, _ := env.Kube.CoreV1().Pods(ns).Get(ctx, "spec", metav1.GetOptions{})
	if p.Status.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("qosClass %s, want Burstable", p.Status.QOSClass)
	}
	if len(p.Status.InitContainerStatuses) != 1 || p.Status.InitContainerStatuses[0].State.Terminated == nil ||
		p.Status.InitContainerStatuses[0].State.Terminated.Reason != "Completed" {
		t.Errorf("init container status %+v", p.Status.InitContainerStatuses)
	}
	id := containerOf(t, ns, "spec", "main")
	sh := func(cmd string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r, err := env.CRI.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", cmd}, Timeout: 10})
		if err != nil {
			t.Fatalf("exec %q: %v", cmd, err)
		}
		return strings.TrimSpace(string(r.Stdout) + string(r.Stderr))
	}
	checks := []struct{ what, cmd, want string }{
		{"init container ran first", "cat /work/init", "init-done"},
		{"postStart hook ran", "cat /work/poststart", "started"},
		{"env value", "echo $PLAIN", "plain"},
		{"env $(VAR) expansion", "echo $EXPANDED", "plain-expanded"},
		{"env configMapKeyRef", "echo $FROM_CM", "cm-one"},
		{"env secretKeyRef", "echo $FROM_SECRET", "s3cret"},
		{"env fieldRef metadata.name", "echo $POD_NAME", "spec"},
		{"env fieldRef spec.nodeName", "echo $NODE_NAME", podSpecNode},
		{"env fieldRef status.podIP", "echo $POD_IP", p.Status.PodIP},
		{"env resourceFieldRef", "echo $MEM_LIMIT_MI", "64"},
		{"envFrom with prefix", "echo $CM_extra", "x"},
		{"configMap volume with items", "cat /cfg/renamed", "cm-one"},
		{"secret volume", "cat /sec/k", "s3cret"},
		{"secret defaultMode", "stat -L -c %a /sec/k", "440"},
		{"downwardAPI volume", "cat /dapi/labels", `app="spec"`},
		{"emptyDir medium Memory is tmpfs", "grep ' /mem ' /proc/mounts | cut -d' ' -f3", "tmpfs"},
		{"hostPath Directory", "touch /host/written && echo ok", "ok"},
		{"hostPath DirectoryOrCreate", "test -d /created && echo ok", "ok"},
		{"service-account token projected", "test -s /var/run/secrets/kubernetes.io/serviceaccount/token && echo ok", "ok"},
		{"runAsUser", "id -u", "1000"},
		{"supplemental group from fsGroup", "id -G | tr ' ' '\\n' | grep -x 2000", "2000"},
		{"hostAliases", "grep aliased /etc/hosts | cut -f1", "10.9.9.9"},
		{"dnsConfig", "grep nameserver /etc/resolv.conf", "nameserver 10.9.9.10"},
	}
	for _, c := range checks {
		if got := sh(c.cmd); got != c.want {
			t.Errorf("%s: %q gave %q, want %q", c.what, c.cmd, got, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(hostDir, "written")); err != nil {
		t.Errorf("the hostPath write did not reach the host: %v", err)
	}
	if st, err := os.Stat(createdDir); err != nil || !st.IsDir() {
		t.Errorf("DirectoryOrCreate did not create the host directory: %v", err)
	}

	// A ConfigMap update reaches the mounted file (items included).
	cm, _ := env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
	cm.Data["k"] = "cm-two"
	must[*corev1.ConfigMap](t)(env.Kube.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}))
	framework.Eventually(t, 60*time.Second, "configMap update in the volume", func(context.Context) (bool, error) {
		got := sh("cat /cfg/renamed")
		return got == "cm-two", fmt.Errorf("file holds %q", got)
	})

	// exec through the kubelet-style API, proxied to containerd's streaming server.
	if out := execWebSocket(t, "127.0.0.1:20352", ns, "spec", "main", "echo", "exec-works"); strings.TrimSpace(out) != "exec-works" {
		t.Errorf("exec through the kubelet API printed %q", out)
	}

	// Deletion runs the preStop hook (it writes to the hostPath) before stopping.
	if err := env.Kube.CoreV1().Pods(ns).Delete(ctx, "spec", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 60*time.Second, "preStop ran and the pod is gone", func(ctx context.Context) (bool, error) {
		_, statErr := os.Stat(filepath.Join(hostDir, "prestop"))
		_, err := env.Kube.CoreV1().Pods(ns).Get(ctx, "spec", metav1.GetOptions{})
		return statErr == nil && err != nil, fmt.Errorf("preStop file: %v; pod: %v", statErr, err)
	})
}

func specPod(hostDir, createdDir string) *corev1.Pod {
	optional := false
	mode := int32(0o440)
	uid, fsGroup := int64(1000), int64(2000)
	dirOrCreate, directory := corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory
	sh := func(s string) []string { return []string{"sh", "-c", s} }
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "spec", Labels: map[string]string{"app": "spec"}},
		Spec: corev1.PodSpec{
			NodeName:                      podSpecNode,
			TerminationGracePeriodSeconds: ptr(int64(5)),
			SecurityContext:               &corev1.PodSecurityContext{RunAsUser: &uid, FSGroup: &fsGroup},
			HostAliases:                   []corev1.HostAlias{{IP: "10.9.9.9", Hostnames: []string{"aliased"}}},
			DNSPolicy:                     corev1.DNSNone,
			DNSConfig:                     &corev1.PodDNSConfig{Nameservers: []string{"10.9.9.10"}},
			InitContainers: []corev1.Container{{
				Name: "init", Image: busyboxLocal, Command: sh("echo init-done > /work/init"),
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}},
			}},
			Containers: []corev1.Container{{
				Name: "main", Image: busyboxLocal, Command: []string{"sleep", "3600"},
				Env: []corev1.EnvVar{
					{Name: "PLAIN", Value: "plain"},
					{Name: "EXPANDED", Value: "$(PLAIN)-expanded"},
					{Name: "FROM_CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "k", Optional: &optional}}},
					{Name: "FROM_SECRET", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "k"}}},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
					{Name: "MEM_LIMIT_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{
						Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
				},
				EnvFrom: []corev1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "work", MountPath: "/work"}, {Name: "mem", MountPath: "/mem"}, {Name: "cfg", MountPath: "/cfg"},
					{Name: "sec", MountPath: "/sec"}, {Name: "dapi", MountPath: "/dapi"}, {Name: "host", MountPath: "/host"},
					{Name: "created", MountPath: "/created"},
				},
				Lifecycle: &corev1.Lifecycle{
					PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: sh("echo started > /work/poststart")}},
					PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: sh("touch /host/prestop")}},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
				{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"},
					Items:                []corev1.KeyToPath{{Key: "k", Path: "renamed"}}}}},
				{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec", DefaultMode: &mode}}},
				{Name: "dapi", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}}},
				{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: &directory}}},
				{Name: "created", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: createdDir, Type: &dirOrCreate}}},
			},
		},
	}
}

// containerOf returns the running container's ID, straight from containerd.
func containerOf(t *testing.T, ns, pod, container string) string {
	t.Helper()
	var id string
	framework.Eventually(t, 30*time.Second, "container "+container+" of "+pod, func(ctx context.Context) (bool, error) {
		r, err := env.CRI.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
			State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
			LabelSelector: map[string]string{"io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.name": pod,
				"io.kubernetes.container.name": container}}})
		if err != nil || len(r.Containers) == 0 {
			return false, err
		}
		id = r.Containers[0].Id
		return true, nil
	})
	return id
}

// execWebSocket runs a command through the kubelet-style API's /exec over WebSocket (the
// v4.channel.k8s.io protocol: each message starts with its stream's number) and returns
// what it printed on stdout.
func execWebSocket(t *testing.T, server, ns, pod, container string, command ...string) string {
	t.Helper()
	q := url.Values{"output": {"1"}, "error": {"1"}, "command": command}
	d := websocket.Dialer{Subprotocols: []string{"v4.channel.k8s.io"}, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(fmt.Sprintf("ws://%s/exec/%s/%s/%s?%s", server, ns, pod, container, q.Encode()), nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("exec: %v %s", err, status)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var stdout strings.Builder
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return stdout.String() // the server closes the stream when the command ends
		}
		if len(msg) > 0 && msg[0] == 1 {
			stdout.Write(msg[1:])
		}
	}
}
