// Package authz decides, for every message an edge node sends upstream, whether that node may
// do it: Kubernetes' Node authorizer and NodeRestriction admission, applied to the KubeEdge
// wire. It is always on and denies by default: only the operation/resource combinations listed
// in [Authorizer.Authorize] can pass, and each of those is checked against the sending node.
//
// The hub answers keepalives and acks (response/error carrying a parent id) itself; they never
// reach the authorizer, and if one does it is refused like any other unlisted combination.
//
// The decision uses the operation and the resource string (and, for events, mirror pods and
// device statuses, the content); the route's group and source are not looked at, so callers
// must dispatch on operation and resource too, never on the group alone.
package authz

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/skerry-io/skerry/pkg/wire"
)

// Scope is the node graph as the authorizer needs it.
type Scope interface {
	// Allows reports whether node may read the object key (a configmap, secret, service-account
	// token, pod or node that one of its pods references, or similar).
	Allows(node string, key wire.Key) bool
	// PodNode returns the node a pod is bound to; ok is false for a pod the graph does not know.
	PodNode(namespace, name string) (node string, ok bool)
	// Device returns the node a Device is bound to and its uid; ok is false for a Device the
	// graph does not know.
	Device(namespace, name string) (node, uid string, ok bool)
}

// Class groups denials for counting and alerting.
type Class string

// Denial classes.
const (
	// ClassForeignNode: the message is about another node's Node or Lease.
	ClassForeignNode Class = "foreign-node"
	// ClassForeignPod: the message is about a pod not bound to the node (or unknown).
	ClassForeignPod Class = "foreign-pod"
	// ClassForeignDevice: the message is about a Device not bound to the node (or unknown,
	// or re-created since the edge learnt of it).
	ClassForeignDevice Class = "foreign-device"
	// ClassUnreferenced: a read of an object outside the node's graph.
	ClassUnreferenced Class = "unreferenced"
	// ClassUnsupported: an operation/resource combination no rule allows.
	ClassUnsupported Class = "unsupported"
	// ClassMalformed: the resource string or the content cannot be read.
	ClassMalformed Class = "malformed"
)

// numClasses sizes the counter array; allClasses is a function so no package state is mutable.
const numClasses = 6

func allClasses() [numClasses]Class {
	return [numClasses]Class{ClassForeignNode, ClassForeignPod, ClassForeignDevice, ClassUnreferenced, ClassUnsupported, ClassMalformed}
}

// Decision is the outcome of [Authorizer.Authorize]. When Allowed is false, Reason is a sentence
// meant for the edge (as the content of an error reply) and for the log.
type Decision struct {
	Allowed bool
	Reason  string
	Class   Class // empty when allowed
}

// LeaseNamespace is where node leases live.
const LeaseNamespace = "kube-node-lease"

// Authorizer is safe for concurrent use.
type Authorizer struct {
	scope  Scope
	log    *slog.Logger
	denied [numClasses]atomic.Uint64
}

// New returns an authorizer over scope. A nil log discards.
func New(scope Scope, log *slog.Logger) *Authorizer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authorizer{scope: scope, log: log}
}

// Denials returns how many messages were refused, by class (every class is present).
func (a *Authorizer) Denials() map[Class]uint64 {
	m := make(map[Class]uint64, numClasses)
	for i, c := range allClasses() {
		m[c] = a.denied[i].Load()
	}
	return m
}

// Authorize decides whether node may send m. Every denial is counted and logged with the
// node, operation and resource (never the content, which may hold secrets).
func (a *Authorizer) Authorize(node string, m *wire.Message) Decision {
	d := a.decide(node, m)
	if !d.Allowed {
		for i, c := range allClasses() {
			if c == d.Class {
				a.denied[i].Add(1)
			}
		}
		a.log.Warn("edge message refused",
			"node", node, "operation", string(m.Route.Operation), "resource", clip(m.Route.Resource),
			"class", string(d.Class), "reason", d.Reason)
	}
	return d
}

func (a *Authorizer) decide(node string, m *wire.Message) Decision {
	op := m.Route.Operation
	res := m.Route.Resource
	key, err := wire.ParseResource(res)
	if err != nil {
		return deny(ClassMalformed, "node %q may not %s %q: %v", node, clip(string(op)), clip(res), err)
	}
	switch key.Type {
	case wire.TypeNode, wire.TypeNodeStatus, wire.TypeNodePatch:
		return a.nodeRule(node, op, key)
	case wire.TypeLease:
		return a.leaseRule(node, op, key)
	case wire.TypePodStatus, wire.TypePodPatch:
		if op == wire.OpUpdate || op == wire.OpPatch {
			return a.podWrite(node, op, key, string(op)+" pod status of")
		}
	case wire.TypePod:
		switch op {
		case wire.OpDelete:
			// Like NodeRestriction: the kubelet deletes mirror pods and finishes the graceful
			// deletion of its own pods.
			return a.podWrite(node, op, key, "delete pod")
		case wire.OpQuery:
			return a.read(node, key)
		case wire.OpInsert:
			return a.mirrorPodRule(node, key, m.Content)
		}
	case wire.TypeConfigMap, wire.TypeSecret, wire.TypeServiceAccountToken:
		if op == wire.OpQuery {
			return a.read(node, key)
		}
	case wire.TypeEvent:
		if op == wire.OpInsert {
			return a.eventRule(node, key, m.Content)
		}
	case wire.TypeDevice, wire.TypeDeviceModel:
		if op == wire.OpQuery {
			return a.read(node, key)
		}
	case wire.TypeDeviceStatus:
		if op == wire.OpUpdate {
			return a.deviceStatusRule(node, op, key, m.Content)
		}
	case wire.TypeMQTTUpload:
		if op == wire.OpPublish {
			return a.uploadRule(node, op, key)
		}
	}
	return unsupported(node, op, key)
}

// nodeRule: register and update only one's own Node. Deleting it is refused although the
// Kubernetes kubelet may: an edge node deleting itself would drop the sync of all its pods,
// and removing a node is the administrator's (keadm reset) decision, not the edge's.
func (a *Authorizer) nodeRule(node string, op wire.Operation, key wire.Key) Decision {
	// KubeEdge edges address their node status and patches with their own namespace token
	// ("<ns>/nodestatus/<name>", spec §2), though a Node is cluster-scoped: the token is ignored
	// for those two types. The Node object itself must use "null".
	if key.Namespace != "" && key.Type == wire.TypeNode {
		return deny(ClassMalformed, "node %q may not %s %s: a node is cluster-scoped, its namespace token must be %q",
			node, op, key, wire.NullNamespace)
	}
	if key.Name == "" {
		if op == wire.OpQuery && key.Type == wire.TypeNode {
			return a.read(node, key) // refused there, as a list
		}
		return unsupported(node, op, key)
	}
	switch op {
	case wire.OpInsert, wire.OpUpdate, wire.OpPatch:
		if key.Type == wire.TypeNode && op == wire.OpPatch {
			break // node patches travel as nodepatch
		}
		if key.Name != node {
			return deny(ClassForeignNode, "node %q may not %s %s: a node may write only its own Node", node, op, key)
		}
		return allow()
	case wire.OpQuery:
		if key.Type != wire.TypeNode {
			break
		}
		if key.Name == node {
			return allow() // its own Node is always in its graph
		}
		return a.read(node, key)
	case wire.OpDelete:
		if key.Type == wire.TypeNode && key.Name == node {
			return deny(ClassUnsupported, "node %q may not delete its own Node: removing a node is done from the cloud", node)
		}
		if key.Type == wire.TypeNode {
			return deny(ClassForeignNode, "node %q may not delete %s: a node may write only its own Node", node, key)
		}
	}
	return unsupported(node, op, key)
}

// leaseRule: a node renews (and reads back) only its own lease in kube-node-lease.
func (a *Authorizer) leaseRule(node string, op wire.Operation, key wire.Key) Decision {
	switch op {
	case wire.OpInsert, wire.OpUpdate, wire.OpQuery:
	default:
		return unsupported(node, op, key)
	}
	if key.Namespace != LeaseNamespace || key.Name == "" {
		return deny(ClassForeignNode, "node %q may not %s %s: a node may use only its own lease %s/lease/%s",
			node, op, key, LeaseNamespace, node)
	}
	if key.Name != node {
		return deny(ClassForeignNode, "node %q may not %s %s: a node may use only its own lease", node, op, key)
	}
	return allow()
}

// podWrite allows a write about a pod only when the graph binds that pod to node.
func (a *Authorizer) podWrite(node string, op wire.Operation, key wire.Key, what string) Decision {
	if key.Namespace == "" || key.Name == "" {
		return deny(ClassMalformed, "node %q may not %s %s: a pod needs a namespace and a name", node, op, key)
	}
	if why, ok := a.boundHere(node, key.Namespace, key.Name); !ok {
		return deny(ClassForeignPod, "node %q may not %s %s/%s: %s", node, what, key.Namespace, key.Name, why)
	}
	return allow()
}

// boundHere reports whether the pod is bound to node, and if not, why.
func (a *Authorizer) boundHere(node, namespace, name string) (why string, ok bool) {
	bound, known := a.scope.PodNode(namespace, name)
	switch {
	case !known:
		return "the pod is not bound to this node", false
	case bound != node:
		return fmt.Sprintf("the pod is bound to %q", bound), false
	}
	return "", true
}

// read allows a single-object query inside the node's graph. Lists are refused: the cloud
// pushes a node its set, so a node never needs to enumerate a namespace.
func (a *Authorizer) read(node string, key wire.Key) Decision {
	if key.Name == "" {
		return deny(ClassUnsupported, "node %q may not list %s: only single objects may be queried", node, key)
	}
	clusterScoped := key.Type == wire.TypeNode
	if clusterScoped != (key.Namespace == "") {
		return deny(ClassMalformed, "node %q may not query %s: wrong namespace token for a %s", node, key, key.Type)
	}
	if !a.scope.Allows(node, key) {
		if key.Type == wire.TypeDevice || key.Type == wire.TypeDeviceModel {
			return deny(ClassUnreferenced, "node %q may not query %s: it is not one of this node's devices or their models", node, key)
		}
		return deny(ClassUnreferenced, "node %q may not query %s: no pod of this node references it", node, key)
	}
	return allow()
}

// eventRule: events only about the node itself or a pod bound to it, in that pod's namespace.
func (a *Authorizer) eventRule(node string, key wire.Key, content []byte) Decision {
	if key.Namespace == "" || key.Name == "" {
		return deny(ClassMalformed, "node %q may not insert %s: an event needs a namespace and a name", node, key)
	}
	ref, err := involvedObject(content)
	if err != nil {
		return deny(ClassMalformed, "node %q may not insert %s: %v", node, key, err)
	}
	switch ref.kind {
	case "Node":
		if ref.namespace != "" || ref.name != node {
			return deny(ClassForeignNode, "node %q may not insert %s: it is about Node %q, a node may report only on itself",
				node, key, clip(ref.name))
		}
		return allow()
	case "Pod":
		if ref.namespace != key.Namespace {
			return deny(ClassMalformed, "node %q may not insert %s: an event about a pod must be in the pod's namespace %q",
				node, key, clip(ref.namespace))
		}
		pk := wire.Key{Namespace: ref.namespace, Type: wire.TypePod, Name: ref.name}
		if ref.name == "" || pk.Validate() != nil {
			return deny(ClassMalformed, "node %q may not insert %s: involvedObject does not name a valid pod", node, key)
		}
		if why, ok := a.boundHere(node, pk.Namespace, pk.Name); !ok {
			return deny(ClassForeignPod, "node %q may not insert %s: it is about pod %s/%s and %s",
				node, key, pk.Namespace, pk.Name, why)
		}
		return allow()
	}
	return deny(ClassUnsupported, "node %q may not insert %s: events may be only about its Node or its pods, not a %q",
		node, key, clip(ref.kind))
}

func allow() Decision { return Decision{Allowed: true} }

func deny(c Class, format string, args ...any) Decision {
	return Decision{Reason: fmt.Sprintf(format, args...), Class: c}
}

func unsupported(node string, op wire.Operation, key wire.Key) Decision {
	return deny(ClassUnsupported, "node %q may not %s %s: no rule allows an edge node to %s a %s",
		node, clip(string(op)), key, clip(string(op)), key.Type)
}

// clip keeps attacker-chosen strings short in reasons and logs.
func clip(s string) string {
	const max = 256
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
