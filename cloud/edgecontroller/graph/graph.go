// Package graph keeps, for every edge node, the set of objects that node should hold: the Node
// itself, the pods bound to it and the ConfigMaps and Secrets those pods reference, and the
// Devices bound to it with the DeviceModels those devices reference. The same
// set is the node's authorization scope (what it may read), so one structure answers both the
// desired-set builder ([Graph.Referenced]) and the authorizer ([Graph.Allows]).
//
// The graph is fed typed events (UpsertNode, DeletePod, ...) by the informer layer and holds
// names only, never object contents. Membership depends only on references: a ConfigMap a pod
// references is in the node's set whether or not it exists yet, so the node is authorized for
// it the moment it is created and the desired-set builder (which reads objects from listers)
// simply finds nothing to send until then. This also keeps the graph independent of
// ConfigMap and Secret events, which are by far the most numerous in a cluster.
package graph

import (
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/skerry-io/skerry/pkg/wire"
)

// EdgeNodeLabel marks a Node as an edge node. Its presence counts, whatever its value
// (KubeEdge sets it to "").
const EdgeNodeLabel = "node-role.kubernetes.io/edge"

type podID struct{ namespace, name string }

// podRecord is what the graph remembers of a bound pod.
type podRecord struct {
	node string
	// refs are the pod's ConfigMap and Secret keys, unique and sorted. A pod in a terminal
	// phase has none: its containers never start again, so it no longer needs them.
	refs []wire.Key
}

// Graph is safe for concurrent use. Reads (Allows, the hot path of every edge request) take a
// shared lock.
type Graph struct {
	mu sync.RWMutex
	// sets holds one entry per edge node: every key in its set with the number of holders
	// (1 for the Node and each pod; the number of the node's pods referencing it otherwise).
	sets map[string]map[wire.Key]int32
	// pods holds every bound pod, on edge nodes or not: the pod informer may deliver a pod
	// before its Node, and a Node may gain the edge label later, so the set of a node that
	// becomes an edge node must be buildable from what is already known.
	pods       map[podID]*podRecord
	podsByNode map[string]map[podID]struct{}
	// devices and devicesByNode do the same for Devices (see devices.go); podID serves as
	// their namespace/name identity too.
	devices       map[podID]*deviceRecord
	devicesByNode map[string]map[podID]struct{}
}

// New returns an empty graph.
func New() *Graph {
	return &Graph{
		sets:          make(map[string]map[wire.Key]int32),
		pods:          make(map[podID]*podRecord),
		podsByNode:    make(map[string]map[podID]struct{}),
		devices:       make(map[podID]*deviceRecord),
		devicesByNode: make(map[string]map[podID]struct{}),
	}
}

// NodeKey is the key of a Node in a node's set.
func NodeKey(name string) wire.Key { return wire.Key{Type: wire.TypeNode, Name: name} }

func podKey(id podID) wire.Key {
	return wire.Key{Namespace: id.namespace, Type: wire.TypePod, Name: id.name}
}

// UpsertNode records a Node's addition or update. A Node without [EdgeNodeLabel] has no set;
// removing the label empties the node's set as deleting the Node does.
func (g *Graph) UpsertNode(node *corev1.Node) {
	_, edge := node.Labels[EdgeNodeLabel]
	g.mu.Lock()
	defer g.mu.Unlock()
	if !edge {
		delete(g.sets, node.Name)
		return
	}
	if g.sets[node.Name] != nil {
		return
	}
	set := map[wire.Key]int32{NodeKey(node.Name): 1}
	for id := range g.podsByNode[node.Name] {
		addPod(set, id, g.pods[id])
	}
	for id := range g.devicesByNode[node.Name] {
		addDevice(set, id, g.devices[id])
	}
	g.sets[node.Name] = set
}

// DeleteNode removes a Node's set. Its pods stay known (their own deletions follow), so a Node
// deleted and re-registered under the same name gets its set back.
func (g *Graph) DeleteNode(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.sets, name)
}

// UpsertPod records a pod's addition or update. An unbound pod is forgotten (it holds nothing
// yet); a pod now bound to another node than before (deleted and recreated under the same name)
// leaves the old node's set.
func (g *Graph) UpsertPod(pod *corev1.Pod) {
	id := podID{pod.Namespace, pod.Name}
	if pod.Spec.NodeName == "" {
		g.DeletePod(id.namespace, id.name)
		return
	}
	rec := &podRecord{node: pod.Spec.NodeName}
	if !terminal(pod) {
		rec.refs = refKeys(pod)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.pods[id]
	if old != nil {
		if old.node == rec.node && slices.Equal(old.refs, rec.refs) {
			return // most pod updates are status changes that move no reference
		}
		g.unlink(id, old)
	}
	g.pods[id] = rec
	byNode := g.podsByNode[rec.node]
	if byNode == nil {
		byNode = make(map[podID]struct{})
		g.podsByNode[rec.node] = byNode
	}
	byNode[id] = struct{}{}
	if set := g.sets[rec.node]; set != nil {
		addPod(set, id, rec)
	}
}

// DeletePod forgets a pod; its references leave its node's set unless another pod there
// still holds them.
func (g *Graph) DeletePod(namespace, name string) {
	id := podID{namespace, name}
	g.mu.Lock()
	defer g.mu.Unlock()
	if old := g.pods[id]; old != nil {
		g.unlink(id, old)
	}
}

// unlink removes a known pod from every index. The caller holds g.mu.
func (g *Graph) unlink(id podID, rec *podRecord) {
	delete(g.pods, id)
	if byNode := g.podsByNode[rec.node]; byNode != nil {
		delete(byNode, id)
		if len(byNode) == 0 {
			delete(g.podsByNode, rec.node)
		}
	}
	if set := g.sets[rec.node]; set != nil {
		removePod(set, id, rec)
	}
}

func addPod(set map[wire.Key]int32, id podID, rec *podRecord) {
	set[podKey(id)]++
	for _, k := range rec.refs {
		set[k]++
	}
}

func removePod(set map[wire.Key]int32, id podID, rec *podRecord) {
	release(set, podKey(id))
	for _, k := range rec.refs {
		release(set, k)
	}
}

func release(set map[wire.Key]int32, k wire.Key) {
	if n := set[k]; n > 1 {
		set[k] = n - 1
	} else {
		delete(set, k)
	}
}

// terminal reports whether the pod has finished for good: the kubelet (edged) restarts no
// container of a Succeeded or Failed pod, so it needs none of its ConfigMaps or Secrets. The
// pod itself stays in the set until deleted, so the edge can still report and clean it up.
func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// refKeys returns the pod's ConfigMap and Secret keys, sorted (ConfigMaps first), then its
// token key if it projects service-account tokens, so two records can be compared with
// slices.Equal.
func refKeys(pod *corev1.Pod) []wire.Key {
	cms, secrets, _ := PodReferences(pod)
	tokens := ProjectsTokens(pod)
	if len(cms)+len(secrets) == 0 && !tokens {
		return nil
	}
	keys := make([]wire.Key, 0, len(cms)+len(secrets)+1)
	for _, n := range cms {
		keys = append(keys, wire.Key{Namespace: pod.Namespace, Type: wire.TypeConfigMap, Name: n})
	}
	for _, n := range secrets {
		keys = append(keys, wire.Key{Namespace: pod.Namespace, Type: wire.TypeSecret, Name: n})
	}
	if tokens {
		keys = append(keys, TokenKey(pod.Namespace, pod.Name))
	}
	return keys
}

// NodeOf returns the node a known pod is bound to, edge node or not.
func (g *Graph) NodeOf(namespace, name string) (string, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if rec := g.pods[podID{namespace, name}]; rec != nil {
		return rec.node, true
	}
	return "", false
}

// IsEdgeNode reports whether a Node with [EdgeNodeLabel] is known under this name.
func (g *Graph) IsEdgeNode(name string) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.sets[name] != nil
}

// Referenced returns the node's set, ordered by namespace, type and name (so the Node, being
// cluster-scoped, comes first). It is empty for a node that is not a known edge node.
func (g *Graph) Referenced(node string) []wire.Key {
	g.mu.RLock()
	set := g.sets[node]
	keys := make([]wire.Key, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	g.mu.RUnlock()
	slices.SortFunc(keys, wire.Key.Compare)
	return keys
}

// Allows reports whether key is in the node's set, i.e. whether the node may read that object.
// Only single objects are ever in a set: a key without a name (a list) is never allowed.
func (g *Graph) Allows(node string, key wire.Key) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.sets[node][key] > 0
}

// Holders returns the edge nodes whose set holds key, sorted. It looks at every node's set,
// which costs one map lookup per edge node: cheap next to the sync a change starts.
func (g *Graph) Holders(key wire.Key) []string {
	g.mu.RLock()
	var names []string
	for n, set := range g.sets {
		if set[key] > 0 {
			names = append(names, n)
		}
	}
	g.mu.RUnlock()
	slices.Sort(names)
	return names
}

// Nodes returns the names of the known edge nodes, sorted.
func (g *Graph) Nodes() []string {
	g.mu.RLock()
	names := make([]string, 0, len(g.sets))
	for n := range g.sets {
		names = append(names, n)
	}
	g.mu.RUnlock()
	slices.Sort(names)
	return names
}
