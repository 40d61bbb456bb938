//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/test/e2e/framework"
)

var staticPodCloud = cloudAddrs{hub: "127.0.0.1:25000", bootstrap: "127.0.0.1:25002", admission: "127.0.0.1:25005", admin: "127.0.0.1:25006"}

const staticPodNode = "static-a"

// TestStaticPods: a manifest in edged.staticPodPath runs on the node and appears in the API as
// a Running mirror pod bound to it; a mirror pod deleted by a user comes back; removing the
// file removes the pod and its mirror.
func TestStaticPods(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	manifests := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	ns := "e2e-static-" + fmt.Sprint(time.Now().UnixNano()%1_000_000)
	must[*corev1.Namespace](t)(env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	t.Cleanup(func() { _ = env.Kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	_ = startCloud(t, dir, staticPodCloud)
	_ = newEdge(t, dir, staticPodNode, staticPodCloud, "127.0.0.1:20554",
		fmt.Sprintf("edged:\n  enable: true\n  staticPodPath: %q\n  server: {address: 127.0.0.1:20351}\n  relistPeriod: 1s\nnode: {statusUpdateFrequency: 2s}\n", manifests))
	t.Cleanup(func() {
		_ = env.Kube.CoreV1().Nodes().Delete(context.Background(), staticPodNode, metav1.DeleteOptions{})
		_ = env.Kube.CoordinationV1().Leases("kube-node-lease").Delete(context.Background(), staticPodNode, metav1.DeleteOptions{})
		_ = env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), "autonomy.pods.skerry.io", metav1.DeleteOptions{})
	})
	waitNodeReady(t, staticPodNode)

	file := filepath.Join(manifests, "sleeper.yaml")
	writeManifest := func() {
		t.Helper()
		if err := os.WriteFile(file, []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: sleeper
  namespace: %s
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sleep
    image: 127.0.0.1:5000/library/busybox:latest
    command: ["sleep", "3600"]
`, ns)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeManifest()
	name := "sleeper-" + staticPodNode
	waitRunningMirror := func(what string) *corev1.Pod {
		t.Helper()
		var got *corev1.Pod
		framework.Eventually(t, 2*time.Minute, what, func(ctx context.Context) (bool, error) {
			p, err := env.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			got = p
			return p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == staticPodNode &&
				p.Annotations["kubernetes.io/config.mirror"] != "" && p.Annotations["kubernetes.io/config.source"] == "file", nil
		})
		return got
	}
	mirror := waitRunningMirror("mirror pod Running on " + staticPodNode)
	if len(mirror.OwnerReferences) != 1 || mirror.OwnerReferences[0].Kind != "Node" || mirror.OwnerReferences[0].Name != staticPodNode {
		t.Errorf("mirror pod owners = %+v", mirror.OwnerReferences)
	}

	// A user deletes the mirror pod: the edge creates it again; the static pod keeps running.
	if err := env.Kube.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again := waitRunningMirror("mirror pod re-created")
	if again.UID == mirror.UID {
		t.Errorf("mirror pod not re-created (uid %s)", again.UID)
	}

	// The file goes: so do the pod and its mirror.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 90*time.Second, "mirror pod gone", func(ctx context.Context) (bool, error) {
		_, err := env.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}
