//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/test/e2e/framework"
)

var mapperPodCloud = cloudAddrs{hub: "127.0.0.1:28100", bootstrap: "127.0.0.1:28102", admission: "127.0.0.1:28105", admin: "127.0.0.1:28106"}

const mapperPodNode = "mapperpod-a"

// TestMapperAsPod runs the virtual mapper the way operators deploy mappers: as a pod on the
// edge node, from the image the runtime script built, with the DMI socket's directory mounted.
// Its simulated counter reaches DeviceStatus and its writable property reports the desired
// value as observed.
func TestMapperAsPod(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	installDeviceCRDs(t)
	startCloud(t, dir, mapperPodCloud)
	// The socket directory is mounted at the same path in the pod, so the socket address
	// the mapper registers means the same file to the edge.
	sockDir := filepath.Join(dir, "dmi")
	if err := os.MkdirAll(sockDir, 0o750); err != nil {
		t.Fatal(err)
	}
	newEdge(t, dir, mapperPodNode, mapperPodCloud, "127.0.0.1:20557", fmt.Sprintf(
		"edged: {server: {address: 127.0.0.1:20354}, relistPeriod: 1s}\nnode: {statusUpdateFrequency: 2s}\n"+
			"eventBus: {enable: true, internal: {address: 127.0.0.1:21885}}\n"+
			"deviceTwin: {enable: true, dmi: {socket: %q}}\n", filepath.Join(sockDir, "dmi.sock")))
	t.Cleanup(func() {
		_ = env.Kube.CoreV1().Nodes().Delete(context.Background(), mapperPodNode, metav1.DeleteOptions{})
		_ = env.Kube.CoordinationV1().Leases("kube-node-lease").Delete(context.Background(), mapperPodNode, metav1.DeleteOptions{})
		_ = env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), "autonomy.pods.skerry.io", metav1.DeleteOptions{})
	})
	waitNodeReady(t, mapperPodNode)
	ns := createNamespace(t)

	dirType := corev1.HostPathDirectory
	must[*corev1.Pod](t)(env.Kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "virtual-mapper"},
		Spec: corev1.PodSpec{
			NodeName:                      mapperPodNode,
			AutomountServiceAccountToken:  ptr(false),
			TerminationGracePeriodSeconds: ptr(int64(2)),
			Containers: []corev1.Container{{
				Name: "mapper", Image: "docker.io/library/virtual-mapper:latest",
				Args:         []string{"--name", "virtual-e2e", "--dmi-socket", filepath.Join(sockDir, "dmi.sock"), "--socket", filepath.Join(sockDir, "virtual-e2e.sock")},
				VolumeMounts: []corev1.VolumeMount{{Name: "dmi", MountPath: sockDir}},
			}},
			Volumes: []corev1.Volume{{Name: "dmi", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: sockDir, Type: &dirType}}}},
		},
	}, metav1.CreateOptions{}))

	writeFile(t, dir, "virtual.yaml", fmt.Sprintf(`apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: sim-model, namespace: %[1]s}
spec:
  protocol: virtual
  properties:
  - {name: count, type: INT, accessMode: ReadOnly}
  - {name: level, type: INT, accessMode: ReadWrite, minimum: "0", maximum: "100"}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: sim-1, namespace: %[1]s}
spec:
  deviceModelRef: {name: sim-model}
  nodeName: %[2]s
  protocol: {protocolName: virtual}
  properties:
  - name: count
    collectCycle: 200
    reportCycle: 500
    reportToCloud: true
    visitors: {protocolName: virtual, configData: {kind: counter, min: 0, max: 1000000, step: 1}}
  - name: level
    desired: {value: "42"}
    collectCycle: 200
    reportCycle: 500
    reportToCloud: true
    visitors: {protocolName: virtual, configData: {kind: constant, initial: 7}}
`, ns, mapperPodNode))
	if out, err := env.RunKubectl(ctx, "apply", "-f", filepath.Join(dir, "virtual.yaml")); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}

	twins := func(ctx context.Context) (map[string][2]string, error) {
		ds, err := env.Devices.DevicesV1beta1().DeviceStatuses(ns).Get(ctx, "sim-1", metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		out := map[string][2]string{}
		for _, tw := range ds.Status.Twins {
			var v [2]string
			if tw.Reported != nil {
				v[0] = tw.Reported.Value
			}
			if tw.ObservedDesired != nil {
				v[1] = tw.ObservedDesired.Value
			}
			out[tw.PropertyName] = v
		}
		return out, nil
	}
	var first int
	framework.Eventually(t, 2*time.Minute, "the mapper pod's counter in DeviceStatus", func(ctx context.Context) (bool, error) {
		tw, err := twins(ctx)
		if err != nil {
			return false, err
		}
		n, err := strconv.Atoi(tw["count"][0])
		first = n
		return err == nil && tw["level"] == [2]string{"42", "42"}, fmt.Errorf("twins %v (pod: %s)", tw, podPhase(ctx, ns, "virtual-mapper"))
	})
	framework.Eventually(t, 30*time.Second, "the counter moving on", func(ctx context.Context) (bool, error) {
		tw, err := twins(ctx)
		if err != nil {
			return false, err
		}
		n, err := strconv.Atoi(tw["count"][0])
		return err == nil && n > first, fmt.Errorf("count %v after %d", tw["count"], first)
	})
}

func podPhase(ctx context.Context, ns, name string) string {
	p, err := env.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s %+v", p.Status.Phase, p.Status.ContainerStatuses)
}
