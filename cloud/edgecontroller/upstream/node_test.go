package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/pkg/wire"
)

func TestKubeletMaySetLabel(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"kubernetes.io/hostname", true},
		{"kubernetes.io/arch", true},
		{"kubernetes.io/os", true},
		{"beta.kubernetes.io/os", true},
		{"beta.kubernetes.io/arch", true},
		{"beta.kubernetes.io/instance-type", true},
		{"node.kubernetes.io/instance-type", true},
		{"topology.kubernetes.io/region", true},
		{"topology.kubernetes.io/zone", true},
		{"failure-domain.beta.kubernetes.io/zone", true},
		{"failure-domain.beta.kubernetes.io/region", true},
		{"kubelet.kubernetes.io/anything", true},
		{"node.kubernetes.io/anything", true},
		{"foo.node.kubernetes.io/x", true},
		{"foo.kubelet.kubernetes.io/x", true},
		{"example.com/rack", true},
		{"plain", true},
		{"kubernetes.io.example.com/x", true}, // not under the kubernetes.io domain
		{"node-restriction.kubernetes.io/trusted", false},
		{"foo.node-restriction.kubernetes.io/trusted", false},
		{"node-role.kubernetes.io/master", false},
		{"node-role.kubernetes.io/control-plane", false},
		{"node-role.kubernetes.io/edge", false},
		{"kubernetes.io/role", false},
		{"beta.kubernetes.io/fluentd-ds-ready", false},
		{"failure-domain.beta.kubernetes.io/other", false},
		{"topology.kubernetes.io/rack", false},
		{"k8s.io/x", false},
		{"sub.k8s.io/x", false},
		{"kubernetes.io/x", false},
	}
	for _, tt := range tests {
		if got := kubeletMaySetLabel(tt.key); got != tt.want {
			t.Errorf("kubeletMaySetLabel(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func registration() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: "edge-1",
			Labels: map[string]string{
				"kubernetes.io/hostname":                "edge-1",
				"kubernetes.io/arch":                    "arm64",
				"example.com/rack":                      "r1",
				"node-role.kubernetes.io/control-plane": "",
				"node-restriction.kubernetes.io/x":      "y",
				"example.com/bad":                       "not a valid value!",
			},
			Annotations: map[string]string{"edge.skerry.io/version": "1.0"},
		},
		Spec: corev1.NodeSpec{
			Taints:        []corev1.Taint{{Key: "edge", Effect: corev1.TaintEffectNoSchedule}},
			Unschedulable: true, // not taken from the edge
		},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}},
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.36.0-kubeedge"},
		},
	}
}

func TestRegisterCreatesNode(t *testing.T) {
	e := newEnv(t)
	reply, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpInsert, "null/node/edge-1", mustJSON(t, registration())))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := verbs(e.client), []string{"create nodes", "update nodes/status"}; !slices.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	n, err := e.client.CoreV1().Nodes().Get(context.Background(), "edge-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{
		"kubernetes.io/hostname": "edge-1", "kubernetes.io/arch": "arm64", "example.com/rack": "r1",
		EdgeLabel: "", "skerry.io/project": "p1",
	}
	if !mapsEqual(n.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", n.Labels, wantLabels)
	}
	if n.Annotations["edge.skerry.io/version"] != "1.0" || len(n.Spec.Taints) != 1 || n.Spec.Unschedulable {
		t.Errorf("metadata/spec not as registered: %+v %+v", n.Annotations, n.Spec)
	}
	if len(n.Status.Addresses) != 1 || n.Status.NodeInfo.KubeletVersion != "v1.36.0-kubeedge" {
		t.Errorf("status not set: %+v", n.Status)
	}
	var answered corev1.Node
	if err := json.Unmarshal(reply, &answered); err != nil {
		t.Fatal(err)
	}
	if answered.Kind != "Node" || answered.APIVersion != "v1" || answered.Name != "edge-1" || len(answered.Status.Conditions) != 1 {
		t.Errorf("answer = %s", reply)
	}
	if c := e.h.Stats()[KindRegister]; c.Handled != 1 || c.Failed != 0 {
		t.Errorf("stats = %+v", c)
	}
}

func TestRegisterExistingEdgeNodeUpdatesStatus(t *testing.T) {
	existing := edgeNode("edge-1", "u-1")
	existing.Labels["admin"] = "set"
	existing.Status.VolumesAttached = []corev1.AttachedVolume{{Name: "v1", DevicePath: "/dev/x"}}
	e := newEnv(t, existing)
	reply, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpInsert, "null/node/edge-1", mustJSON(t, registration())))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := verbs(e.client), []string{"create nodes", "get nodes", "update nodes/status"}; !slices.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	n, _ := e.client.CoreV1().Nodes().Get(context.Background(), "edge-1", metav1.GetOptions{})
	if n.Labels["admin"] != "set" || n.Labels["example.com/rack"] != "" {
		t.Errorf("labels changed on re-registration: %v", n.Labels)
	}
	if len(n.Status.VolumesAttached) != 1 || len(n.Status.Addresses) != 1 {
		t.Errorf("status = %+v", n.Status)
	}
	if !strings.Contains(string(reply), `"uid":"u-1"`) {
		t.Errorf("answer = %s", reply)
	}
}

func TestRegisterRefusesNonEdgeNode(t *testing.T) {
	e := newEnv(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1"}})
	_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpInsert, "null/node/edge-1", mustJSON(t, registration())))
	if !errors.Is(err, ErrRefused) || errors.Is(err, hub.ErrTransient) || !strings.Contains(err.Error(), "not an edge node") {
		t.Fatalf("err = %v", err)
	}
	if slices.Contains(verbs(e.client), "update nodes/status") {
		t.Errorf("non-edge node written: %v", verbs(e.client))
	}
	// Node status for it is refused as well.
	_, err = e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "null/nodestatus/edge-1", mustJSON(t, registration())))
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("nodestatus err = %v", err)
	}
}

func TestRegisterRefusesOtherName(t *testing.T) {
	e := newEnv(t)
	n := registration()
	n.Name = "edge-2"
	_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpInsert, "null/node/edge-1", mustJSON(t, n)))
	if !errors.Is(err, ErrMalformed) || len(e.client.Actions()) != 0 {
		t.Fatalf("err = %v, actions %v", err, verbs(e.client))
	}
}

func TestNodeStatusMerges(t *testing.T) {
	existing := edgeNode("edge-1", "u-1")
	existing.ResourceVersion = "5"
	existing.Status = corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionFalse},
			{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "RouteCreated"},
		},
		Capacity:        corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
		Images:          []corev1.ContainerImage{{Names: []string{"old"}}},
		VolumesAttached: []corev1.AttachedVolume{{Name: "v1"}},
		VolumesInUse:    []corev1.UniqueVolumeName{"v1"},
	}
	e := newEnv(t, existing)
	e.objs.nodes["edge-1"] = existing.DeepCopy() // the lister's copy is used, not a Get

	in := corev1.Node{Status: corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.2"}},
		Capacity:        corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")},
		Allocatable:     corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3")},
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}, {Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}},
		NodeInfo:        corev1.NodeSystemInfo{OSImage: "Debian"},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10350}},
		VolumesAttached: []corev1.AttachedVolume{{Name: "edge-says"}}, // ignored
	}}
	// KubeEdge-style namespace token in place of null.
	reply, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/nodestatus/edge-1", mustJSON(t, in)))
	if err != nil || reply != nil {
		t.Fatalf("reply %s, err %v", reply, err)
	}
	if got, want := verbs(e.client), []string{"update nodes/status"}; !slices.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	n, _ := e.client.CoreV1().Nodes().Get(context.Background(), "edge-1", metav1.GetOptions{})
	st := n.Status
	conds := map[corev1.NodeConditionType]corev1.ConditionStatus{}
	for _, c := range st.Conditions {
		conds[c.Type] = c.Status
	}
	if len(conds) != 3 || conds[corev1.NodeReady] != corev1.ConditionTrue || conds[corev1.NodeNetworkUnavailable] != corev1.ConditionFalse ||
		conds[corev1.NodeMemoryPressure] != corev1.ConditionFalse {
		t.Errorf("conditions = %+v", st.Conditions)
	}
	if st.Capacity.Cpu().String() != "4" || st.Allocatable.Cpu().String() != "3" || st.Addresses[0].Address != "10.0.0.2" ||
		st.NodeInfo.OSImage != "Debian" || st.DaemonEndpoints.KubeletEndpoint.Port != 10350 {
		t.Errorf("status = %+v", st)
	}
	if len(st.Images) != 1 || st.Images[0].Names[0] != "old" {
		t.Errorf("images replaced though absent: %+v", st.Images)
	}
	if len(st.VolumesAttached) != 1 || st.VolumesAttached[0].Name != "v1" || len(st.VolumesInUse) != 1 {
		t.Errorf("volumes changed: %+v %+v", st.VolumesAttached, st.VolumesInUse)
	}
	if e.objs.nodes["edge-1"].Status.Capacity.Cpu().String() != "2" {
		t.Error("the lister's object was modified")
	}
}

func TestNodeStatusConflictRetry(t *testing.T) {
	e := newEnv(t, edgeNode("edge-1", "u-1"))
	e.objs.nodes["edge-1"] = edgeNode("edge-1", "u-1")
	conflicts := 0
	reactor(e.client, "update", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts < 2 {
			conflicts++
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "nodes"}, "edge-1", errors.New("stale"))
		}
		return false, nil, nil
	})
	in := corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	if _, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "null/nodestatus/edge-1", mustJSON(t, in))); err != nil {
		t.Fatal(err)
	}
	want := []string{"update nodes/status", "get nodes", "update nodes/status", "get nodes", "update nodes/status"}
	if got := verbs(e.client); !slices.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}

	// Endless conflicts give up with a plain error.
	reactor(e.client, "update", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "nodes"}, "edge-1", errors.New("stale"))
	})
	_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "null/nodestatus/edge-1", mustJSON(t, in)))
	if err == nil || !apierrors.IsConflict(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestNodeStatusNotRegistered(t *testing.T) {
	e := newEnv(t)
	_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "null/nodestatus/edge-1", `{"status":{}}`))
	if !errors.Is(err, ErrNotFound) || errors.Is(err, hub.ErrTransient) || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("err = %v", err)
	}
}

func TestNodePatch(t *testing.T) {
	e := newEnv(t, edgeNode("edge-1", "u-1"))
	patch := `{"metadata":{"annotations":{"a":"b"},"labels":{"example.com/rack":"r2"}},"status":{"conditions":[{"type":"Ready","status":"True"}]}}`
	reply, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpPatch, "null/nodepatch/edge-1", patch))
	if err != nil {
		t.Fatal(err)
	}
	var n corev1.Node
	if err := json.Unmarshal(reply, &n); err != nil {
		t.Fatal(err)
	}
	if n.Kind != "Node" || n.Annotations["a"] != "b" || n.Labels["example.com/rack"] != "r2" || len(n.Status.Conditions) != 1 {
		t.Errorf("answer = %s", reply)
	}
	var patched bool
	for _, a := range e.client.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && p.GetSubresource() == "status" {
			patched = true
		}
	}
	if !patched {
		t.Errorf("no status patch: %v", verbs(e.client))
	}

	refused := []string{
		`{"metadata":{"labels":{"node-role.kubernetes.io/control-plane":""}}}`,
		`{"metadata":{"labels":{"node-role.kubernetes.io/edge":null}}}`,
		`{"metadata":{"labels":{"skerry.io/project":"p2"}}}`,
		`{"metadata":{"labels":{"$patch":"replace"}}}`,
		`{"metadata":{"labels":null}}`,
		`{"metadata":{"ownerReferences":[]}}`,
		`{"metadata":{"finalizers":["x"]}}`,
		`{"spec":{"unschedulable":false}}`,
	}
	for _, p := range refused {
		before := len(e.client.Actions())
		_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpPatch, "null/nodepatch/edge-1", p))
		if !errors.Is(err, ErrRefused) {
			t.Errorf("patch %s: err = %v, want refused", p, err)
		}
		if len(e.client.Actions()) != before {
			t.Errorf("patch %s reached the API server", p)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
