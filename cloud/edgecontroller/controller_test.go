package edgecontroller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skerry-io/skerry/cloud/edgecontroller/graph"
	"github.com/skerry-io/skerry/cloud/hub/queue"
	"github.com/skerry-io/skerry/pkg/wire"
)

// sink records what the controller queues, per node, as "op key@rv" lines.
type sink struct {
	mu  sync.Mutex
	ops []string
}

func (s *sink) Upsert(node string, key wire.Key, v queue.Version, msg *wire.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg.Route.Resource != key.String() || msg.Header.ResourceVersion != v.ResourceVersion {
		return fmt.Errorf("message for %s@%s names %s@%s", key, v.ResourceVersion, msg.Route.Resource, msg.Header.ResourceVersion)
	}
	s.ops = append(s.ops, fmt.Sprintf("%s %s %s", node, msg.Route.Operation, key))
	return nil
}

func (s *sink) Delete(node string, key wire.Key, uid string, _ *wire.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops = append(s.ops, fmt.Sprintf("%s delete %s", node, key))
	return nil
}

func (s *sink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := s.ops
	s.ops = nil
	slices.Sort(ops)
	return ops
}

// fakeTokens issues "token-<n>" per call and can be made to fail.
type fakeTokens struct {
	mu     sync.Mutex
	fail   bool
	issued int
	forgot []string
}

func (f *fakeTokens) Tokens(_ context.Context, pod *corev1.Pod) (json.RawMessage, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, "", errors.New("token request refused")
	}
	f.issued++
	return json.RawMessage(fmt.Sprintf(`{"kind":"PodTokens","metadata":{"name":%q}}`, pod.Name)), "t1", nil
}

func (f *fakeTokens) Forget(namespace, pod string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, namespace+"/"+pod)
}

func edgeNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1",
		Labels: map[string]string{graph.EdgeNodeLabel: ""}}}
}

func boundPod(name, node string, configMap, secret string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1"},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			Volumes: []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}}},
	}
	if configMap != "" {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "cm", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: configMap}}}})
	}
	if secret != "" {
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: secret}}}}
	}
	return p
}

type fixture struct {
	client *fake.Clientset
	sink   *sink
	tokens *fakeTokens
	c      *Controller
}

func start(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	f := &fixture{client: fake.NewClientset(objs...), sink: &sink{}, tokens: &fakeTokens{}}
	c, err := New(Config{Client: f.client, Hub: f.sink, Tokens: f.tokens, Workers: 2,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return f
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitOps collects queued operations until want (sorted) is reached or the deadline passes.
func (f *fixture) waitOps(t *testing.T, want ...string) {
	t.Helper()
	slices.Sort(want)
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = append(got, f.sink.take()...)
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			t.Fatalf("queued %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func desiredKeys(t *testing.T, c *Controller, node string) []string {
	t.Helper()
	unlock := c.LockNode(node)
	defer unlock()
	set, err := c.Desired(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for k := range set {
		ks = append(ks, k.String())
	}
	slices.Sort(ks)
	return ks
}

func TestDesiredIsTheGraphReadFromTheCaches(t *testing.T) {
	f := start(t,
		edgeNode("edge-1"), edgeNode("edge-2"),
		boundPod("web-1", "edge-1", "cfg", "creds"),
		boundPod("web-2", "edge-2", "", ""),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg", ResourceVersion: "1"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "creds", ResourceVersion: "1"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "unreferenced", ResourceVersion: "1"}},
	)
	want := []string{"ns/configmap/cfg", "ns/pod/web-1", "ns/secret/creds", "ns/serviceaccounttoken/web-1", "null/node/edge-1"}
	if got := desiredKeys(t, f.c, "edge-1"); !slices.Equal(got, want) {
		t.Errorf("edge-1 desired %v, want %v", got, want)
	}
	if got := desiredKeys(t, f.c, "edge-2"); !slices.Equal(got, []string{"ns/pod/web-2", "ns/serviceaccounttoken/web-2", "null/node/edge-2"}) {
		t.Errorf("edge-2 desired %v", got)
	}
	if got := desiredKeys(t, f.c, "not-an-edge-node"); len(got) != 0 {
		t.Errorf("unknown node desired %v", got)
	}

	// The message carries the whole object with its type, as the edge stores it.
	unlock := f.c.LockNode("edge-1")
	set, _ := f.c.Desired(context.Background(), "edge-1")
	unlock()
	m, err := set[wire.Key{Namespace: "ns", Type: wire.TypePod, Name: "web-1"}].Message()
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(m.Content, &pod); err != nil || pod.Kind != "Pod" || pod.APIVersion != "v1" || pod.Spec.NodeName != "edge-1" {
		t.Errorf("pod message content %s (%v)", m.Content, err)
	}
	if m.Route.Source != ModuleName || m.Route.Group != wire.GroupResource || m.Header.ResourceVersion != "1" {
		t.Errorf("route %+v header %+v", m.Route, m.Header)
	}
}

func TestChangesAreQueuedOnlyForNodesThatHoldThem(t *testing.T) {
	ctx := context.Background()
	f := start(t,
		edgeNode("edge-1"), edgeNode("edge-2"),
		boundPod("web-1", "edge-1", "cfg", ""),
		boundPod("web-2", "edge-2", "other", ""),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg", ResourceVersion: "1"}},
	)
	desiredKeys(t, f.c, "edge-1") // the resync of a connect
	desiredKeys(t, f.c, "edge-2")

	// A ConfigMap update reaches only the node whose pod references it.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg", ResourceVersion: "2"}, Data: map[string]string{"k": "v"}}
	if _, err := f.client.CoreV1().ConfigMaps("ns").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-1 update ns/configmap/cfg")

	// A referenced object created later is inserted.
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other", ResourceVersion: "3"}}
	if _, err := f.client.CoreV1().ConfigMaps("ns").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-2 insert ns/configmap/other")

	// An unreferenced Secret goes nowhere.
	if _, err := f.client.CoreV1().Secrets("ns").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "loose"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A new pod brings itself and its token; its deletion removes them and what only it referenced.
	if _, err := f.client.CoreV1().Pods("ns").Create(ctx, boundPod("web-3", "edge-1", "", "loose"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-1 insert ns/pod/web-3", "edge-1 insert ns/secret/loose", "edge-1 insert ns/serviceaccounttoken/web-3")
	if err := f.client.CoreV1().Pods("ns").Delete(ctx, "web-3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-1 delete ns/pod/web-3", "edge-1 delete ns/secret/loose", "edge-1 delete ns/serviceaccounttoken/web-3")
	eventually(t, "tokens of the deleted pod forgotten", func() bool {
		f.tokens.mu.Lock()
		defer f.tokens.mu.Unlock()
		return slices.Contains(f.tokens.forgot, "ns/web-3")
	})

	// A node that lost the edge label loses its whole set.
	n := edgeNode("edge-2")
	n.Labels = nil
	n.ResourceVersion = "5"
	if _, err := f.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-2 delete null/node/edge-2", "edge-2 delete ns/pod/web-2", "edge-2 delete ns/configmap/other",
		"edge-2 delete ns/serviceaccounttoken/web-2")
}

func TestNodeWithoutResyncGetsNothingQueued(t *testing.T) {
	ctx := context.Background()
	f := start(t, edgeNode("edge-1"))
	if _, err := f.client.CoreV1().Pods("ns").Create(ctx, boundPod("web-1", "edge-1", "", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod in the graph", func() bool {
		return f.c.Graph().Allows("edge-1", wire.Key{Namespace: "ns", Type: wire.TypePod, Name: "web-1"})
	})
	eventually(t, "queue drained", func() bool { return f.c.QueueLen() == 0 })
	if ops := f.sink.take(); len(ops) != 0 {
		t.Errorf("queued %v for a node that never connected; its first resync sends everything", ops)
	}
	if got := desiredKeys(t, f.c, "edge-1"); len(got) != 3 {
		t.Errorf("resync set %v", got)
	}
}

func TestTokenFailureKeepsWhatTheEdgeHasAndRetries(t *testing.T) {
	ctx := context.Background()
	f := start(t, edgeNode("edge-1"), boundPod("web-1", "edge-1", "", ""))
	desiredKeys(t, f.c, "edge-1")
	f.tokens.mu.Lock()
	f.tokens.fail = true
	f.tokens.mu.Unlock()
	// A pod update triggers a reconcile whose token read fails: no delete of the token.
	p := boundPod("web-1", "edge-1", "", "")
	p.ResourceVersion = "2"
	p.Labels = map[string]string{"v": "2"}
	if _, err := f.client.CoreV1().Pods("ns").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-1 update ns/pod/web-1")
	f.tokens.mu.Lock()
	f.tokens.fail = false
	f.tokens.mu.Unlock()
	// The retry succeeds with the same token version: nothing more is queued.
	eventually(t, "retry done", func() bool { return f.c.QueueLen() == 0 })
	if ops := f.sink.take(); slices.ContainsFunc(ops, func(s string) bool { return s == "edge-1 delete ns/serviceaccounttoken/web-1" }) {
		t.Errorf("a failed token read deleted the edge's tokens: %v", ops)
	}
}

func TestObjectAnswersOnlyInsideTheSet(t *testing.T) {
	f := start(t, edgeNode("edge-1"), edgeNode("edge-2"), boundPod("web-1", "edge-1", "cfg", ""),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"}, Data: map[string]string{"a": "b"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "loose"}})
	eventually(t, "synced", f.c.Synced)
	cfg := wire.Key{Namespace: "ns", Type: wire.TypeConfigMap, Name: "cfg"}
	b, ok := f.c.Object("edge-1", cfg)
	if !ok {
		t.Fatal("edge-1 cannot read the ConfigMap its pod mounts")
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(b, &cm); err != nil || cm.Data["a"] != "b" || cm.Kind != "ConfigMap" {
		t.Errorf("content %s", b)
	}
	if _, ok := f.c.Object("edge-2", cfg); ok {
		t.Error("edge-2 read another node's ConfigMap")
	}
	if _, ok := f.c.Object("edge-1", wire.Key{Namespace: "ns", Type: wire.TypeSecret, Name: "loose"}); ok {
		t.Error("edge-1 read an unreferenced Secret")
	}
	if _, ok := f.c.Object("edge-1", wire.Key{Type: wire.TypeNode, Name: "edge-1"}); !ok {
		t.Error("edge-1 cannot read its own Node")
	}
}

func TestResyncKeepsTokensItCannotIssue(t *testing.T) {
	f := start(t, edgeNode("edge-1"), boundPod("web-1", "edge-1", "", ""))
	f.tokens.mu.Lock()
	f.tokens.fail = true
	f.tokens.mu.Unlock()
	unlock := f.c.LockNode("edge-1")
	set, err := f.c.Desired(context.Background(), "edge-1")
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := set[graph.TokenKey("ns", "web-1")]; !ok || !o.Keep {
		t.Fatalf("a token that could not be issued is %+v (present %v), want Keep so the resync does not delete it", o, ok)
	}
	f.tokens.mu.Lock()
	f.tokens.fail = false
	f.tokens.mu.Unlock()
	// The retry queues it once it can be issued.
	f.waitOps(t, "edge-1 insert ns/serviceaccounttoken/web-1")
}

func TestNodeThatReturnsWhileConnectedGetsItsSetAgain(t *testing.T) {
	ctx := context.Background()
	f := start(t, edgeNode("edge-1"), boundPod("web-1", "edge-1", "", ""))
	desiredKeys(t, f.c, "edge-1") // connected and resynced
	n := edgeNode("edge-1")
	n.Labels = nil
	n.ResourceVersion = "2"
	if _, err := f.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-1 delete null/node/edge-1", "edge-1 delete ns/pod/web-1", "edge-1 delete ns/serviceaccounttoken/web-1")
	// The label comes back; the edge never disconnected, so no resync will run.
	n = edgeNode("edge-1")
	n.ResourceVersion = "3"
	if _, err := f.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-1 insert null/node/edge-1", "edge-1 insert ns/pod/web-1", "edge-1 insert ns/serviceaccounttoken/web-1")
}

func TestRecreatedObjectIsDeletedThenInserted(t *testing.T) {
	f := start(t, edgeNode("edge-1"), boundPod("web-1", "edge-1", "", ""))
	desiredKeys(t, f.c, "edge-1")
	// What was last queued was an earlier incarnation of the pod (delete and create fell
	// between two reconciles).
	podK := wire.Key{Namespace: "ns", Type: wire.TypePod, Name: "web-1"}
	f.c.sentMu.Lock()
	f.c.sent["edge-1"][podK] = queue.Version{UID: "uid-earlier", ResourceVersion: "0"}
	f.c.sentMu.Unlock()
	if err := f.c.reconcile(context.Background(), "edge-1"); err != nil {
		t.Fatal(err)
	}
	f.sink.mu.Lock()
	got := slices.Clone(f.sink.ops)
	f.sink.ops = nil
	f.sink.mu.Unlock()
	if want := []string{"edge-1 delete ns/pod/web-1", "edge-1 insert ns/pod/web-1"}; !slices.Equal(got, want) {
		t.Errorf("queued %v, want %v in that order", got, want)
	}
}
