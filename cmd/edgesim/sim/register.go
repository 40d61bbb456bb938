package sim

import (
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/pkg/wire"
)

// EdgeLabel is the label that makes a Node an edge node; cloudcore sets it at registration
// whatever the edge sends, the registration carries it as edgecore's does.
const EdgeLabel = "node-role.kubernetes.io/edge"

// leaseNamespace holds the nodes' Leases, as for kubelets.
const leaseNamespace = "kube-node-lease"

// upstreamSource is edgecore's source name for node messages (edge/nodestatus.Source).
const upstreamSource = "edged"

// registration is node's register message: a minimal Ready v1.Node, enough for cloudcore
// to create the Node and for the node lifecycle controller to leave it alone while the
// Lease is renewed.
func (s *Sim) registration(name string) (*wire.Message, error) {
	labels := map[string]string{EdgeLabel: "", corev1.LabelHostname: name}
	for k, v := range s.cfg.NodeLabels {
		labels[k] = v
	}
	now := metav1.Now()
	n := corev1.Node{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "EdgesimReady",
				Message: "hollow edgesim node", LastHeartbeatTime: now, LastTransitionTime: now,
			}},
		},
	}
	return upstream(wire.OpInsert, wire.Key{Type: wire.TypeNode, Name: name}, n)
}

// leaseMessage renews node's Lease; its duration is four renewal intervals, the kubelet's
// ratio (10 s renewals, 40 s lease).
func leaseMessage(node string, interval time.Duration, now time.Time) (*wire.Message, error) {
	holder := node
	seconds := int32(max(4*interval, 4*time.Second) / time.Second)
	renew := metav1.NewMicroTime(now)
	l := coordinationv1.Lease{
		TypeMeta:   metav1.TypeMeta{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
		ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: leaseNamespace},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &seconds, RenewTime: &renew},
	}
	return upstream(wire.OpUpdate, wire.Key{Namespace: leaseNamespace, Type: wire.TypeLease, Name: node}, l)
}

func upstream(op wire.Operation, k wire.Key, obj any) (*wire.Message, error) {
	content, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("sim: encoding %s: %w", k, err)
	}
	return wire.NewMessage(wire.Route{Source: upstreamSource, Group: wire.GroupResource, Operation: op, Resource: k.String()}, content), nil
}
