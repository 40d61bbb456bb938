package runner

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/skerry-io/skerry/edge/edged"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// TestRealContainerd runs skerry-demo on the real runtime (hack/local-up.sh), checks it
// answers HTTP on its pod IP, survives a runner restart (adoption), and is deleted with
// its cgroups. SKERRY_CRI_ENDPOINT=unix:///run/skerry/containerd/containerd.sock enables it.
func TestRealContainerd(t *testing.T) {
	endpoint := os.Getenv("SKERRY_CRI_ENDPOINT")
	if endpoint == "" {
		t.Skip("SKERRY_CRI_ENDPOINT not set")
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rt, img := runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)

	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir(), store.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const cgroupRoot = "/skerry-runner-test"
	defer func() { // the shared parent, once empty
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + cgroupRoot)
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	}()
	prober, status := newFakeProber(), newFakeStatus()
	podsDir := t.TempDir()
	run := func() (stop func()) {
		r, err := New(Config{
			Runtime: rt, Images: img, Store: db, Volumes: &fakeVolumes{}, Env: fakeEnv{}, Prober: prober,
			Hooks: &fakeHooks{}, Status: status, Objects: &fakeObjects{}, NodeName: "edge-1", HostIP: "127.0.0.1",
			PodsDir: podsDir, CgroupRoot: cgroupRoot, RelistPeriod: 200 * time.Millisecond,
			Logger: quietLogger(), Clock: clock.RealClock{},
		})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}

	uid := types.UID(fmt.Sprintf("real-%d", time.Now().UnixNano()))
	grace := int64(10)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "skerry-runner-test", UID: uid},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "web", Image: "docker.io/library/skerry-demo:latest", ImagePullPolicy: corev1.PullIfNotPresent,
				Ports:     []corev1.ContainerPort{{ContainerPort: 8080}},
				Env:       []corev1.EnvVar{{Name: "POD_NAME", Value: "demo"}},
				Resources: corev1.ResourceRequirements{},
			}},
		},
	}
	h := &harness{t: t, db: db}
	stop := run()
	h.apply(wire.OpInsert, pod)
	var st corev1.PodStatus
	waitLong(t, "pod running", 60*time.Second, func() bool {
		var ok bool
		st, ok = status.get(uid)
		return ok && st.Phase == corev1.PodRunning && st.PodIP != ""
	})
	body := httpGet(t, "http://"+net.JoinHostPort(st.PodIP, "8080")+"/")
	if !strings.Contains(body, "pod name:      demo") || !strings.Contains(body, "pod IP:        "+st.PodIP) {
		t.Errorf("page:\n%s", body)
	}
	first := containerStatus(st, "web").ContainerID
	stop()

	// Adoption: same container afterwards.
	stop = run()
	defer func() { stop() }()
	waitLong(t, "adopted", 30*time.Second, func() bool {
		s, _ := status.get(uid)
		return s.Phase == corev1.PodRunning && containerStatus(s, "web").ContainerID == first && prober.wasAdded(strings.TrimPrefix(first, "containerd://"))
	})

	// Deletion.
	del := pod.DeepCopy()
	now := metav1.Now()
	del.DeletionTimestamp, del.DeletionGracePeriodSeconds = &now, &grace
	h.apply(wire.OpUpdate, del)
	waitLong(t, "PodDeleted", 60*time.Second, func() bool { return status.wasDeleted(uid) })
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{edged.LabelPodUID: string(uid)}}})
	if err != nil || len(sbs.Items) != 0 {
		t.Errorf("sandboxes left: %v %v", sbs, err)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*" + cgroupRoot + "/pod" + string(uid)); len(left) != 0 {
		t.Errorf("pod cgroups left: %v", left)
	}
	h.apply(wire.OpDelete, del)

	// A crashing container: restarted once at once, then in CrashLoopBackOff; its log is
	// where the kubelet keeps it.
	crash := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crash", Namespace: "skerry-runner-test", UID: uid + "-crash"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyOnFailure,
			Containers: []corev1.Container{{
				Name: "c", Image: "docker.io/library/busybox:latest", ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sh", "-c", "echo hello; exit 3"},
			}},
		},
	}
	h.apply(wire.OpInsert, crash)
	waitLong(t, "CrashLoopBackOff", 60*time.Second, func() bool {
		s, _ := status.get(crash.UID)
		cs := containerStatus(s, "c")
		return cs.RestartCount == 1 && cs.State.Waiting != nil && cs.State.Waiting.Reason == reasonCrashLoopBackOff &&
			cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.ExitCode == 3
	})
	logData, err := os.ReadFile(filepath.Join(podsDir, string(crash.UID), "logs", "c", "0.log"))
	if err != nil || !strings.Contains(string(logData), " stdout F hello") {
		t.Errorf("log: %q %v", logData, err)
	}
	h.apply(wire.OpDelete, crash) // moved away: torn down without PodDeleted
	waitLong(t, "crash pod torn down", 30*time.Second, func() bool {
		sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{edged.LabelPodUID: string(crash.UID)}}})
		return err == nil && len(sbs.Items) == 0
	})
}

func waitLong(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	var last error
	for range 100 {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}
