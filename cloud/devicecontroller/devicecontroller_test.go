package devicecontroller

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/cloud/edgecontroller/graph"
	devfake "github.com/skerry-io/skerry/pkg/client/clientset/versioned/fake"
)

// changes records the nodes the controller reports.
type changes struct {
	mu    sync.Mutex
	nodes []string
}

func (c *changes) add(n string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes = append(c.nodes, n)
}

func (c *changes) has(n string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.nodes, n)
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

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// probeAnswer is the discovery failure to give, nil to serve the API.
type probeAnswer struct {
	mu  sync.Mutex
	err error
}

func (a *probeAnswer) set(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
}

func (a *probeAnswer) get() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// discovery makes the fake's discovery answer with the answer's error while it is set, else
// serve the API.
func discovery(cs *devfake.Clientset, probes *atomic.Int32, answer *probeAnswer) {
	cs.Resources = []*metav1.APIResourceList{{GroupVersion: devicesv1beta1.SchemeGroupVersion.String(),
		APIResources: []metav1.APIResource{{Name: "devices"}, {Name: "devicemodels"}}}}
	cs.PrependReactor("get", "resource", func(k8stesting.Action) (bool, runtime.Object, error) {
		probes.Add(1)
		if err := answer.get(); err != nil {
			return true, nil, err
		}
		return false, nil, nil
	})
}

func run(t *testing.T, c *Controller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

// Until the CRDs are installed there are no devices, and that is a complete answer; once
// they are, the informers start and fill the graph.
func TestStartsWhenTheAPIAppears(t *testing.T) {
	d := &devicesv1beta1.Device{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d1", UID: "u1"},
		Spec: devicesv1beta1.DeviceSpec{NodeName: "edge-1", DeviceModelRef: &devicesv1beta1.DeviceModelReference{Name: "m"}}}
	cs := devfake.NewSimpleClientset(d)
	var probes atomic.Int32
	answer := &probeAnswer{}
	answer.set((apierrors.NewNotFound(devicesv1beta1.Resource("devices"), "")))
	discovery(cs, &probes, answer)
	g := graph.New()
	g.UpsertNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1", Labels: map[string]string{graph.EdgeNodeLabel: ""}}})
	ch := &changes{}
	c, err := New(Config{Client: cs, Graph: g, Changed: ch.add, ProbeInterval: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	eventually(t, "synced without the API", func() bool { return isClosed(c.Synced()) })
	if _, _, ok := g.Device("ns", "d1"); ok {
		t.Fatal("device known while the API is not served")
	}
	answer.set(nil)
	eventually(t, "the device in the graph", func() bool { _, _, ok := g.Device("ns", "d1"); return ok })
	eventually(t, "edge-1 reported changed", func() bool { return ch.has("edge-1") })
	if o, ok, err := c.Object(graph.DeviceKey("ns", "d1")); err != nil || !ok || o.GetUID() != "u1" {
		t.Errorf("Object(d1) = %v %v %v", o, ok, err)
	}
	if _, ok, err := c.Object(graph.DeviceModelKey("ns", "m")); err != nil || ok {
		t.Errorf("a model not created yet: %v %v", ok, err)
	}
}

// A probe that gets no answer says nothing: the controller is not synced, since devices may
// exist.
func TestUnansweredProbeIsNotSynced(t *testing.T) {
	cs := devfake.NewSimpleClientset()
	var probes atomic.Int32
	answer := &probeAnswer{}
	answer.set((apierrors.NewServiceUnavailable("down")))
	discovery(cs, &probes, answer)
	c, err := New(Config{Client: cs, Graph: graph.New(), Changed: func(string) {}, ProbeInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	eventually(t, "three probes", func() bool { return probes.Load() >= 3 })
	if isClosed(c.Synced()) {
		t.Fatal("synced although the API server never answered")
	}
	answer.set(nil)
	eventually(t, "synced", func() bool { return isClosed(c.Synced()) })
}
