//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/test/e2e/framework"
)

var edgedCloud = cloudAddrs{hub: "127.0.0.1:23000", bootstrap: "127.0.0.1:23002", admission: "127.0.0.1:23005", admin: "127.0.0.1:23006"}

const (
	edgedNode   = "edged-a"
	edgedServer = "127.0.0.1:20350"
)

// TestEdged is issue 5 end to end: a Deployment scheduled to the edge node runs on containerd,
// turns Ready and answers on its pod IP; ConfigMap edits reach the mounted file; scaling;
// restart policy with back-off; liveness restarts; unsupported volumes fail the pod with a
// reason; deletion stops containers; an edgecore restart adopts containers; with cloudcore
// away pods keep running and restarting, and statuses catch up.
func TestEdged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cloud := startCloud(t, dir, edgedCloud)
	edge := newEdge(t, dir, edgedNode, edgedCloud, "127.0.0.1:20553",
		fmt.Sprintf("edged:\n  server: {address: %q}\n  relistPeriod: 1s\nnode: {statusUpdateFrequency: 2s}\n", edgedServer))
	t.Cleanup(func() {
		_ = env.Kube.CoreV1().Nodes().Delete(context.Background(), edgedNode, metav1.DeleteOptions{})
		_ = env.Kube.CoordinationV1().Leases("kube-node-lease").Delete(context.Background(), edgedNode, metav1.DeleteOptions{})
		_ = env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), "autonomy.pods.skerry.io", metav1.DeleteOptions{})
	})
	waitNodeReady(t, edgedNode)

	ns := "e2e-edged-" + fmt.Sprint(time.Now().UnixNano()%1_000_000)
	must[*corev1.Namespace](t)(env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	t.Cleanup(func() { _ = env.Kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	framework.Eventually(t, 60*time.Second, "default service account", func(ctx context.Context) (bool, error) {
		_, err := env.Kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})

	// A Deployment of the demo app with a mounted ConfigMap and probes.
	must[*corev1.ConfigMap](t)(env.Kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-config"}, Data: map[string]string{"config": "greeting v1"}}, metav1.CreateOptions{}))
	must[*appsv1.Deployment](t)(env.Kube.AppsV1().Deployments(ns).Create(ctx, demoDeployment(2), metav1.CreateOptions{}))
	waitAvailable(t, ns, "demo", 2)
	for _, p := range podsOf(t, ns, "app=demo") {
		waitHTTP(t, "http://"+net.JoinHostPort(p.Status.PodIP, "8080")+"/", "greeting v1")
	}

	// A hostPort reaches the pod through the node's address.
	hp := edgePod("hostport", demoImage, nil)
	hp.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 18080}}
	must[*corev1.Pod](t)(env.Kube.CoreV1().Pods(ns).Create(ctx, hp, metav1.CreateOptions{}))
	node, err := env.Kube.CoreV1().Nodes().Get(ctx, edgedNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var hostIP string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			hostIP = a.Address
		}
	}
	waitHTTP(t, "http://"+net.JoinHostPort(hostIP, "18080")+"/healthz", "")
	if err := env.Kube.CoreV1().Pods(ns).Delete(ctx, "hostport", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// The kubelet-style API serves the container's log.
	first := podsOf(t, ns, "app=demo")[0]
	logs, err := httpGet(ctx, fmt.Sprintf("http://%s/containerLogs/%s/%s/demo", edgedServer, ns, first.Name))
	if err != nil || !strings.Contains(logs, "listening") {
		t.Errorf("containerLogs: %v\n%s", err, logs)
	}

	// A ConfigMap edit reaches the mounted file of the running pods.
	cm, _ := env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "demo-config", metav1.GetOptions{})
	cm.Data["config"] = "greeting v2"
	must[*corev1.ConfigMap](t)(env.Kube.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}))
	for _, p := range podsOf(t, ns, "app=demo") {
		waitHTTP(t, "http://"+net.JoinHostPort(p.Status.PodIP, "8080")+"/", "greeting v2")
	}

	// Scale up and down.
	scale(t, ns, "demo", 3)
	waitAvailable(t, ns, "demo", 3)
	scale(t, ns, "demo", 1)
	framework.Eventually(t, 90*time.Second, "scaled down to one pod", func(context.Context) (bool, error) {
		pods := podsOf(t, ns, "app=demo")
		return len(pods) == 1, fmt.Errorf("%d pods", len(pods))
	})
	framework.Eventually(t, 60*time.Second, "containers of removed pods stopped", func(ctx context.Context) (bool, error) {
		n := len(runningContainers(t, ns, "demo"))
		return n == 1, fmt.Errorf("%d running demo containers", n)
	})

	// A crash-looping container backs off.
	must[*corev1.Pod](t)(env.Kube.CoreV1().Pods(ns).Create(ctx, edgePod("crash", busyboxLocal, []string{"sh", "-c", "exit 3"}), metav1.CreateOptions{}))
	framework.Eventually(t, 90*time.Second, "crash loop back-off", func(ctx context.Context) (bool, error) {
		st := containerStatus(t, ns, "crash")
		return st != nil && st.RestartCount >= 1 && st.State.Waiting != nil && st.State.Waiting.Reason == "CrashLoopBackOff",
			fmt.Errorf("status %+v", st)
	})

	// A failing liveness probe restarts the container.
	live := edgePod("liveness", busyboxLocal, []string{"sleep", "3600"})
	live.Spec.Containers[0].LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}},
		PeriodSeconds: 1, FailureThreshold: 1,
	}
	must[*corev1.Pod](t)(env.Kube.CoreV1().Pods(ns).Create(ctx, live, metav1.CreateOptions{}))
	framework.Eventually(t, 90*time.Second, "liveness restart", func(ctx context.Context) (bool, error) {
		st := containerStatus(t, ns, "liveness")
		return st != nil && st.RestartCount >= 1, fmt.Errorf("status %+v", st)
	})

	// A pod with a PersistentVolumeClaim fails, naming what is not supported.
	pvc := edgePod("pvc", busyboxLocal, []string{"sleep", "3600"})
	pvc.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
	must[*corev1.Pod](t)(env.Kube.CoreV1().Pods(ns).Create(ctx, pvc, metav1.CreateOptions{}))
	framework.Eventually(t, 60*time.Second, "pvc pod failed with a reason", func(ctx context.Context) (bool, error) {
		p, err := env.Kube.CoreV1().Pods(ns).Get(ctx, "pvc", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.Phase == corev1.PodFailed && strings.Contains(p.Status.Message, "persistentVolumeClaim"),
			fmt.Errorf("phase %s, message %q", p.Status.Phase, p.Status.Message)
	})

	// An edgecore restart adopts the running containers: same container IDs.
	demoBefore := containerIDs(t, ns, "app=demo")
	edge.proc.Stop(t)
	edge.start(t)
	waitNodeReady(t, edgedNode)
	framework.Eventually(t, 30*time.Second, "pods reported after the restart", func(context.Context) (bool, error) {
		return slices.Equal(containerIDs(t, ns, "app=demo"), demoBefore), fmt.Errorf("ids %v, before %v", containerIDs(t, ns, "app=demo"), demoBefore)
	})
	if n := len(runningContainers(t, ns, "demo")); n != 1 {
		t.Errorf("%d demo containers running after the edgecore restart, want the one adopted", n)
	}

	// cloudcore away for a minute: pods keep running and restarting; statuses catch up.
	crashBefore := containerStatus(t, ns, "crash").RestartCount
	cloud.Stop(t)
	down := time.Now()
	demo := podsOf(t, ns, "app=demo")[0]
	framework.Eventually(t, 3*time.Minute, "a minute without the cloud", func(ctx context.Context) (bool, error) {
		if _, err := httpGet(ctx, "http://"+net.JoinHostPort(demo.Status.PodIP, "8080")+"/healthz"); err != nil {
			t.Fatalf("the demo pod stopped answering while the cloud was away: %v", err)
		}
		return time.Since(down) >= time.Minute, nil
	})
	startCloud(t, dir, edgedCloud)
	framework.Eventually(t, 90*time.Second, "crash restarts reported after reconnect", func(ctx context.Context) (bool, error) {
		st := containerStatus(t, ns, "crash")
		return st != nil && st.RestartCount > crashBefore, fmt.Errorf("restartCount %d, before %d", st.RestartCount, crashBefore)
	})

	// kubectl delete stops the container within its grace period, and the pod goes away.
	if err := env.Kube.CoreV1().Pods(ns).Delete(ctx, "liveness", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 60*time.Second, "deleted pod gone", func(ctx context.Context) (bool, error) {
		_, err := env.Kube.CoreV1().Pods(ns).Get(ctx, "liveness", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && len(runningContainers(t, ns, "liveness")) == 0, err
	})

	// Deleting the namespace removes everything from the edge: containers, sandboxes and the
	// pods' tmpfs volumes (which live under this test's directory).
	if err := env.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 2*time.Minute, "the edge removed the namespace's pods", func(ctx context.Context) (bool, error) {
		r, err := env.CRI.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
			LabelSelector: map[string]string{"io.kubernetes.pod.namespace": ns}}})
		if err != nil {
			return false, err
		}
		return len(r.Items) == 0, fmt.Errorf("%d sandboxes left", len(r.Items))
	})
}

func demoDeployment(replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": "demo"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector:                  map[string]string{"kubernetes.io/hostname": edgedNode},
					TerminationGracePeriodSeconds: ptr(int64(5)),
					Containers: []corev1.Container{{
						Name: "demo", Image: demoImage,
						Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						Env:          []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
						VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/skerry-demo"}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}},
							PeriodSeconds: 1},
						LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 5},
					}},
					Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "demo-config"}}}}},
				},
			},
		},
	}
}

func ptr[T any](v T) *T { return &v }

func edgePod(name, image string, command []string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeName:                      edgedNode,
			TerminationGracePeriodSeconds: ptr(int64(2)),
			Containers:                    []corev1.Container{{Name: "main", Image: image, Command: command}},
		},
	}
}

func scale(t *testing.T, ns, name string, n int32) {
	t.Helper()
	framework.Eventually(t, 30*time.Second, fmt.Sprintf("scale %s to %d", name, n), func(ctx context.Context) (bool, error) {
		d, err := env.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		d.Spec.Replicas = &n
		_, err = env.Kube.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
		return err == nil, err
	})
}

func waitAvailable(t *testing.T, ns, name string, n int32) {
	t.Helper()
	framework.Eventually(t, 3*time.Minute, fmt.Sprintf("deployment %s with %d available", name, n), func(ctx context.Context) (bool, error) {
		d, err := env.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.AvailableReplicas == n && d.Status.Replicas == n, fmt.Errorf("status %+v", d.Status)
	})
}

func podsOf(t *testing.T, ns, selector string) []corev1.Pod {
	t.Helper()
	l, err := env.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	return live
}

func containerStatus(t *testing.T, ns, pod string) *corev1.ContainerStatus {
	t.Helper()
	p, err := env.Kube.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
	if err != nil || len(p.Status.ContainerStatuses) == 0 {
		return nil
	}
	return &p.Status.ContainerStatuses[0]
}

func containerIDs(t *testing.T, ns, selector string) []string {
	t.Helper()
	var ids []string
	for _, p := range podsOf(t, ns, selector) {
		for _, c := range p.Status.ContainerStatuses {
			ids = append(ids, c.ContainerID)
		}
	}
	slices.Sort(ids)
	return ids
}

// runningContainers lists, straight from containerd, the running containers of pods whose
// name starts with podPrefix in namespace ns.
func runningContainers(t *testing.T, ns, podPrefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := env.CRI.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": ns},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range r.Containers {
		if strings.HasPrefix(c.Labels["io.kubernetes.pod.name"], podPrefix) {
			ids = append(ids, c.Id)
		}
	}
	return ids
}

func waitHTTP(t *testing.T, url, want string) {
	t.Helper()
	framework.Eventually(t, 60*time.Second, "GET "+url+" shows "+want, func(ctx context.Context) (bool, error) {
		body, err := httpGet(ctx, url)
		return err == nil && strings.Contains(body, want), err
	})
}
