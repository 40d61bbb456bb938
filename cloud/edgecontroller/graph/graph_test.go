package graph

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/pkg/wire"
)

func edgeNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{EdgeNodeLabel: ""}}}
}

func cloudNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"node-role.kubernetes.io/worker": ""}}}
}

// pod builds a pod in namespace "ns" bound to node, with a ConfigMap volume per cms entry and
// an imagePullSecret per secrets entry.
func pod(name, node string, cms, secrets []string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.PodSpec{NodeName: node}}
	for _, c := range cms {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c,
			VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: local(c)}}})
	}
	for _, s := range secrets {
		p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, local(s))
	}
	return p
}

func withPhase(p *corev1.Pod, phase corev1.PodPhase) *corev1.Pod {
	p.Status.Phase = phase
	return p
}

func keyStrings(keys []wire.Key) []string {
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = k.String()
	}
	return s
}

func mustKey(t *testing.T, s string) wire.Key {
	t.Helper()
	k, err := wire.ParseResource(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGraphSets(t *testing.T) {
	tests := []struct {
		name  string
		steps func(g *Graph)
		want  map[string][]string // node → its set in edge form, in Referenced order
		// denied are keys (on node "e1") that must not be allowed.
		denied []string
	}{
		{
			name:  "an edge node's set holds the node itself",
			steps: func(g *Graph) { g.UpsertNode(edgeNode("e1")) },
			want:  map[string][]string{"e1": {"null/node/e1"}},
		},
		{
			name:  "a node without the edge label has no set",
			steps: func(g *Graph) { g.UpsertNode(cloudNode("c1")) },
			want:  map[string][]string{"c1": {}},
		},
		{
			name: "a pod bound to a non-edge node is ignored",
			steps: func(g *Graph) {
				g.UpsertNode(cloudNode("c1"))
				g.UpsertPod(pod("p", "c1", []string{"cm"}, []string{"s"}))
			},
			want:   map[string][]string{"c1": {}},
			denied: []string{"ns/pod/p", "ns/configmap/cm"},
		},
		{
			name: "a pod and its references join its node's set, sorted",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertPod(pod("p", "e1", []string{"cm-b", "cm-a"}, []string{"s"}))
			},
			want: map[string][]string{"e1": {"null/node/e1", "ns/configmap/cm-a", "ns/configmap/cm-b", "ns/pod/p", "ns/secret/s"}},
			denied: []string{"ns/secret/other", "ns/configmap/other", "ns/pod/other", "other/secret/s",
				"null/node/e2", "ns/secret"},
		},
		{
			name: "a pod seen before its node counts once the node arrives",
			steps: func(g *Graph) {
				g.UpsertPod(pod("p", "e1", []string{"cm"}, nil))
				g.UpsertNode(edgeNode("e1"))
			},
			want: map[string][]string{"e1": {"null/node/e1", "ns/configmap/cm", "ns/pod/p"}},
		},
		{
			name: "a node gaining the edge label gets its existing pods",
			steps: func(g *Graph) {
				g.UpsertNode(cloudNode("n"))
				g.UpsertPod(pod("p", "n", nil, []string{"s"}))
				g.UpsertNode(edgeNode("n"))
			},
			want: map[string][]string{"n": {"null/node/n", "ns/pod/p", "ns/secret/s"}},
		},
		{
			name: "a node losing the edge label loses its set",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertPod(pod("p", "e1", nil, []string{"s"}))
				g.UpsertNode(cloudNode("e1"))
			},
			want:   map[string][]string{"e1": {}},
			denied: []string{"null/node/e1", "ns/pod/p", "ns/secret/s"},
		},
		{
			name: "an unbound pod is not in any set",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertPod(pod("p", "", []string{"cm"}, nil))
			},
			want: map[string][]string{"e1": {"null/node/e1"}},
		},
		{
			name: "a deleted pod's references go, shared ones stay",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertPod(pod("p1", "e1", []string{"shared", "only1"}, []string{"s"}))
				g.UpsertPod(pod("p2", "e1", []string{"shared"}, []string{"s"}))
				g.DeletePod("ns", "p1")
			},
			want:   map[string][]string{"e1": {"null/node/e1", "ns/configmap/shared", "ns/pod/p2", "ns/secret/s"}},
			denied: []string{"ns/pod/p1", "ns/configmap/only1"},
		},
		{
			name: "a reference shared by two pods goes when both are gone",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertPod(pod("p1", "e1", []string{"shared"}, nil))
				g.UpsertPod(pod("p2", "e1", []string{"shared"}, nil))
				g.DeletePod("ns", "p1")
				g.DeletePod("ns", "p2")
			},
			want:   map[string][]string{"e1": {"null/node/e1"}},
			denied: []string{"ns/configmap/shared"},
		},
		{
			name: "the same reference on two nodes is counted per node",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertNode(edgeNode("e2"))
				g.UpsertPod(pod("p1", "e1", []string{"cm"}, nil))
				g.UpsertPod(pod("p2", "e2", []string{"cm"}, nil))
				g.DeletePod("ns", "p2")
			},
			want: map[string][]string{
				"e1": {"null/node/e1", "ns/configmap/cm", "ns/pod/p1"},
				"e2": {"null/node/e2"},
			},
		},
		{
			name: "a pod update dropping a reference removes it",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertPod(pod("p", "e1", []string{"keep", "drop"}, []string{"sdrop"}))
				g.UpsertPod(pod("p", "e1", []string{"keep"}, nil))
			},
			want:   map[string][]string{"e1": {"null/node/e1", "ns/configmap/keep", "ns/pod/p"}},
			denied: []string{"ns/configmap/drop", "ns/secret/sdrop"},
		},
		{
			name: "a pod update dropping a reference another pod holds keeps it",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertPod(pod("p1", "e1", []string{"cm"}, nil))
				g.UpsertPod(pod("p2", "e1", []string{"cm"}, nil))
				g.UpsertPod(pod("p1", "e1", nil, nil))
			},
			want: map[string][]string{"e1": {"null/node/e1", "ns/configmap/cm", "ns/pod/p1", "ns/pod/p2"}},
		},
		{
			name: "a pod recreated on another node leaves the old node's set",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertNode(edgeNode("e2"))
				g.UpsertPod(pod("p", "e1", []string{"cm"}, nil))
				g.UpsertPod(pod("p", "e2", []string{"cm"}, nil)) // delete event missed
			},
			want: map[string][]string{
				"e1": {"null/node/e1"},
				"e2": {"null/node/e2", "ns/configmap/cm", "ns/pod/p"},
			},
			denied: []string{"ns/pod/p", "ns/configmap/cm"},
		},
		{
			name: "a terminated pod keeps its own key but not its references",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertPod(withPhase(pod("ok", "e1", []string{"cm1"}, nil), corev1.PodSucceeded))
				g.UpsertPod(withPhase(pod("bad", "e1", nil, []string{"s1"}), corev1.PodFailed))
				g.UpsertPod(withPhase(pod("run", "e1", []string{"cm2"}, nil), corev1.PodRunning))
			},
			want:   map[string][]string{"e1": {"null/node/e1", "ns/configmap/cm2", "ns/pod/bad", "ns/pod/ok", "ns/pod/run"}},
			denied: []string{"ns/configmap/cm1", "ns/secret/s1"},
		},
		{
			name: "a deleted node's set is empty and allows nothing",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertPod(pod("p", "e1", []string{"cm"}, []string{"s"}))
				g.DeleteNode("e1")
			},
			want:   map[string][]string{"e1": {}},
			denied: []string{"null/node/e1", "ns/pod/p", "ns/configmap/cm", "ns/secret/s"},
		},
		{
			name: "a node re-registered after deletion gets its pods back",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.UpsertPod(pod("p", "e1", nil, []string{"s"}))
				g.DeleteNode("e1")
				g.UpsertNode(edgeNode("e1"))
			},
			want: map[string][]string{"e1": {"null/node/e1", "ns/pod/p", "ns/secret/s"}},
		},
		{
			name: "deleting an unknown pod or node is harmless",
			steps: func(g *Graph) {
				g.UpsertNode(edgeNode("e1"))
				g.DeletePod("ns", "nope")
				g.DeleteNode("nope")
			},
			want: map[string][]string{"e1": {"null/node/e1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New()
			tt.steps(g)
			for node, want := range tt.want {
				got := keyStrings(g.Referenced(node))
				if !slices.Equal(got, want) {
					t.Errorf("Referenced(%q) = %q, want %q", node, got, want)
				}
				for _, s := range want {
					if !g.Allows(node, mustKey(t, s)) {
						t.Errorf("Allows(%q, %s) = false, want true", node, s)
					}
				}
				if edge := len(want) > 0; g.IsEdgeNode(node) != edge {
					t.Errorf("IsEdgeNode(%q) = %v, want %v", node, !edge, edge)
				}
			}
			for _, s := range tt.denied {
				if g.Allows("e1", mustKey(t, s)) {
					t.Errorf("Allows(e1, %s) = true, want false", s)
				}
			}
		})
	}
}

func TestNodesAndNodeOf(t *testing.T) {
	g := New()
	for _, n := range []string{"e3", "e1", "e2"} {
		g.UpsertNode(edgeNode(n))
	}
	g.UpsertNode(cloudNode("c1"))
	if got, want := g.Nodes(), []string{"e1", "e2", "e3"}; !slices.Equal(got, want) {
		t.Errorf("Nodes() = %q, want %q", got, want)
	}

	g.UpsertPod(pod("p", "c1", nil, nil))
	if node, ok := g.NodeOf("ns", "p"); !ok || node != "c1" {
		t.Errorf("NodeOf(ns, p) = %q, %v; want c1, true (known on any node)", node, ok)
	}
	g.UpsertPod(pod("p", "e2", nil, nil))
	if node, ok := g.NodeOf("ns", "p"); !ok || node != "e2" {
		t.Errorf("NodeOf after move = %q, %v; want e2, true", node, ok)
	}
	g.DeletePod("ns", "p")
	if node, ok := g.NodeOf("ns", "p"); ok {
		t.Errorf("NodeOf after delete = %q, true; want not found", node)
	}
}

func TestReferencedIsDeterministic(t *testing.T) {
	build := func(order []int) []wire.Key {
		g := New()
		g.UpsertNode(edgeNode("e1"))
		for _, i := range order {
			g.UpsertPod(pod(fmt.Sprintf("p%d", i), "e1", []string{fmt.Sprintf("cm%d", i%3)}, []string{fmt.Sprintf("s%d", i%4)}))
		}
		return g.Referenced("e1")
	}
	first := build([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	for range 20 { // map iteration order varies between runs; the result must not
		if got := build([]int{9, 3, 7, 1, 5, 0, 8, 2, 6, 4}); !slices.Equal(got, first) {
			t.Fatalf("Referenced differs:\n%v\n%v", got, first)
		}
	}
	if !slices.IsSortedFunc(first, wire.Key.Compare) || first[0] != NodeKey("e1") {
		t.Errorf("Referenced not sorted with the node first: %v", first)
	}
}

// TestConcurrentUpdates is meant for -race: writers and readers on shared nodes, then a check
// that the counts came out right.
func TestConcurrentUpdates(t *testing.T) {
	g := New()
	const nodes, workers, rounds = 4, 8, 200
	for n := range nodes {
		g.UpsertNode(edgeNode(fmt.Sprintf("e%d", n)))
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				node := fmt.Sprintf("e%d", (w+r)%nodes)
				name := fmt.Sprintf("w%d-p%d", w, r%5)
				g.UpsertPod(pod(name, node, []string{"shared", name}, []string{"s"}))
				g.Allows(node, wire.Key{Namespace: "ns", Type: wire.TypeConfigMap, Name: "shared"})
				g.Referenced(node)
				g.NodeOf("ns", name)
				if r%3 == 0 {
					g.DeletePod("ns", name)
				}
			}
			for p := range 5 {
				g.DeletePod("ns", fmt.Sprintf("w%d-p%d", w, p))
			}
		})
	}
	wg.Go(func() {
		for range rounds {
			g.UpsertNode(edgeNode("e0"))
			g.Nodes()
			g.IsEdgeNode("e1")
		}
	})
	wg.Wait()
	for n := range nodes {
		node := fmt.Sprintf("e%d", n)
		if got := keyStrings(g.Referenced(node)); !slices.Equal(got, []string{"null/node/" + node}) {
			t.Errorf("after all pods are deleted, Referenced(%s) = %s", node, strings.Join(got, " "))
		}
	}
}

// benchGraph builds 1,000 edge nodes with 10 pods each, each pod with 3 references (a
// ConfigMap shared by the node's pods, a ConfigMap and a Secret of its own).
func benchGraph() (*Graph, []*corev1.Pod) {
	g := New()
	var pods []*corev1.Pod
	for n := range 1000 {
		node := fmt.Sprintf("edge-%d", n)
		g.UpsertNode(edgeNode(node))
		for p := range 10 {
			name := fmt.Sprintf("%s-pod-%d", node, p)
			pd := pod(name, node, []string{node + "-shared", name + "-cm"}, []string{name + "-secret"})
			g.UpsertPod(pd)
			pods = append(pods, pd)
		}
	}
	return g, pods
}

func BenchmarkUpsertPod(b *testing.B) {
	g, pods := benchGraph()
	// changed alternates every pod between two reference sets, so each call does real work
	// (unlink and relink); unchanged is the common status-only update.
	changed := make([]*corev1.Pod, len(pods))
	for i, p := range pods {
		c := p.DeepCopy()
		c.Spec.ImagePullSecrets = []corev1.LocalObjectReference{local(p.Name + "-other")}
		changed[i] = c
	}
	b.Run("changed", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if (i/len(pods))%2 == 0 {
				g.UpsertPod(changed[i%len(pods)])
			} else {
				g.UpsertPod(pods[i%len(pods)])
			}
			i++
		}
	})
	b.Run("unchanged", func(b *testing.B) {
		i := 0
		for b.Loop() {
			g.UpsertPod(pods[i%len(pods)])
			i++
		}
	})
}

func BenchmarkAllows(b *testing.B) {
	g, pods := benchGraph()
	keys := make([]wire.Key, len(pods))
	for i, p := range pods {
		keys[i] = wire.Key{Namespace: p.Namespace, Type: wire.TypeSecret, Name: p.Name + "-secret"}
	}
	b.Run("allowed", func(b *testing.B) {
		i := 0
		for b.Loop() {
			k := i % len(pods)
			if !g.Allows(pods[k].Spec.NodeName, keys[k]) {
				b.Fatal("denied")
			}
			i++
		}
	})
	b.Run("denied", func(b *testing.B) {
		i := 0
		for b.Loop() {
			k := i % len(pods)
			if g.Allows(pods[(k+10)%len(pods)].Spec.NodeName, keys[k]) {
				b.Fatal("allowed")
			}
			i++
		}
	})
}

func TestTokenKeyJoinsTheSetOfPodsThatProjectTokens(t *testing.T) {
	g := New()
	g.UpsertNode(edgeNode("edge-1"))
	withToken := pod("web-1", "edge-1", []string{"kube-root-ca.crt"}, nil)
	withToken.Spec.Volumes = append(withToken.Spec.Volumes, corev1.Volume{Name: "kube-api-access",
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}})
	g.UpsertPod(withToken)
	g.UpsertPod(pod("plain", "edge-1", nil, nil))

	want := []string{"null/node/edge-1", "ns/configmap/kube-root-ca.crt", "ns/pod/plain", "ns/pod/web-1", "ns/serviceaccounttoken/web-1"}
	if got := keyStrings(g.Referenced("edge-1")); !slices.Equal(got, want) {
		t.Errorf("set %v, want %v", got, want)
	}
	if g.Allows("edge-1", TokenKey("ns", "plain")) {
		t.Error("a pod without token projections holds a token object")
	}
	// A finished pod starts no container again, so it needs no token either.
	g.UpsertPod(withPhase(withToken.DeepCopy(), corev1.PodSucceeded))
	if g.Allows("edge-1", TokenKey("ns", "web-1")) {
		t.Error("a succeeded pod still holds its token object")
	}
}

func TestHolders(t *testing.T) {
	g := New()
	for _, n := range []string{"edge-2", "edge-1", "edge-3"} {
		g.UpsertNode(edgeNode(n))
	}
	g.UpsertNode(cloudNode("worker"))
	g.UpsertPod(pod("a", "edge-2", []string{"shared"}, nil))
	g.UpsertPod(pod("b", "edge-1", []string{"shared"}, nil))
	g.UpsertPod(pod("c", "edge-3", []string{"other"}, nil))
	g.UpsertPod(pod("d", "worker", []string{"shared"}, nil))
	shared := wire.Key{Namespace: "ns", Type: wire.TypeConfigMap, Name: "shared"}
	if got := g.Holders(shared); !slices.Equal(got, []string{"edge-1", "edge-2"}) {
		t.Errorf("holders %v, want edge-1 and edge-2 (not the non-edge worker)", got)
	}
	g.DeletePod("ns", "a")
	if got := g.Holders(shared); !slices.Equal(got, []string{"edge-1"}) {
		t.Errorf("holders after delete %v", got)
	}
	if got := g.Holders(wire.Key{Namespace: "ns", Type: wire.TypeSecret, Name: "none"}); len(got) != 0 {
		t.Errorf("holders of an unreferenced key %v", got)
	}
}
