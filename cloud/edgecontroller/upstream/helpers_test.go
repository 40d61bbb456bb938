package upstream

import (
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	apitypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/cloud/edgecontroller/authz"
	devfake "github.com/skerry-io/skerry/pkg/client/clientset/versioned/fake"
	"github.com/skerry-io/skerry/pkg/wire"
)

// fakeScope is a fixed graph for the authorizer: pods bound to nodes, objects each node may read.
type fakeScope struct {
	pods    map[string]string    // "ns/name" -> node
	devices map[string][2]string // "ns/name" -> node, uid
	reads   map[string]map[wire.Key]bool
}

func (s fakeScope) Device(namespace, name string) (string, string, bool) {
	d, ok := s.devices[namespace+"/"+name]
	return d[0], d[1], ok
}

func (s fakeScope) Allows(node string, key wire.Key) bool { return s.reads[node][key] }

func (s fakeScope) PodNode(namespace, name string) (string, bool) {
	n, ok := s.pods[namespace+"/"+name]
	return n, ok
}

func testScope() fakeScope {
	return fakeScope{
		pods:    map[string]string{"default/web-1": "edge-1", "default/web-2": "edge-2"},
		devices: map[string][2]string{"default/thermo": {"edge-1", "uid-thermo"}, "default/pump": {"edge-2", "uid-pump"}},
		reads: map[string]map[wire.Key]bool{
			"edge-1": {
				{Type: wire.TypeNode, Name: "edge-1"}:                                     true,
				{Namespace: "default", Type: wire.TypeConfigMap, Name: "cfg-1"}:           true,
				{Namespace: "default", Type: wire.TypeConfigMap, Name: "gone"}:            true,
				{Namespace: "default", Type: wire.TypeSecret, Name: "s-1"}:                true,
				{Namespace: "default", Type: wire.TypeServiceAccountToken, Name: "web-1"}: true,
				{Namespace: "default", Type: wire.TypePod, Name: "web-1"}:                 true,
			},
		},
	}
}

// fakeObjects is the graph's cache and the listers.
type fakeObjects struct {
	mu      sync.Mutex
	objects map[string]map[wire.Key]json.RawMessage
	pods    map[string]*corev1.Pod
	nodes   map[string]*corev1.Node
}

func newFakeObjects() *fakeObjects {
	return &fakeObjects{
		objects: map[string]map[wire.Key]json.RawMessage{},
		pods:    map[string]*corev1.Pod{},
		nodes:   map[string]*corev1.Node{},
	}
}

func (o *fakeObjects) Object(node string, key wire.Key) (json.RawMessage, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.objects[node][key]
	return b, ok
}

func (o *fakeObjects) Pod(namespace, name string) (*corev1.Pod, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.pods[namespace+"/"+name]
	return p, ok
}

func (o *fakeObjects) Node(name string) (*corev1.Node, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, ok := o.nodes[name]
	return n, ok
}

// fakeClock stands still; After fires at once and records the pause asked for.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	h       *Handler
	client  *fake.Clientset
	devices *devfake.Clientset
	objs    *fakeObjects
	clock   *fakeClock
	authz   *authz.Authorizer
}

func newEnv(t testing.TB, objects ...runtime.Object) *env {
	t.Helper()
	var log *slog.Logger
	if tt, ok := t.(*testing.T); ok {
		log = slog.New(slog.NewTextHandler(tt.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var kube, dev []runtime.Object
	for _, o := range objects {
		if _, ok := o.(*devicesv1beta1.DeviceStatus); ok {
			dev = append(dev, o)
		} else {
			kube = append(kube, o)
		}
	}
	client := fake.NewClientset(kube...)
	devices := devfake.NewSimpleClientset(dev...)
	objs := newFakeObjects()
	clk := &fakeClock{now: testNow}
	az := authz.New(testScope(), log)
	h, err := New(Config{
		Client: client, Devices: devices, Authorizer: az, Objects: objs, Logger: log, Clock: clk,
		NodeLabels: map[string]string{"skerry.io/project": "p1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{h: h, client: client, devices: devices, objs: objs, clock: clk, authz: az}
}

func msg(op wire.Operation, res string, content string) *wire.Message {
	if content == "" {
		content = "null"
	}
	return wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: op, Resource: res}, json.RawMessage(content))
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// verbs lists the client's actions as "verb resource[/subresource]".
func verbs(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	return out
}

func edgeNode(name string, uid string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: apitypes.UID(uid), Labels: map[string]string{EdgeLabel: ""}}}
}

func testPod(ns, name, uid, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: apitypes.UID(uid)},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
}

// reactor is a shorthand for PrependReactor.
func reactor(c *fake.Clientset, verb, resource string, fn func(a k8stesting.Action) (bool, runtime.Object, error)) {
	c.PrependReactor(verb, resource, fn)
}
