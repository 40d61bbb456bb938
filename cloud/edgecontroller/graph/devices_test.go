package graph

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
)

func device(name, node, model, uid string) *devicesv1beta1.Device {
	d := &devicesv1beta1.Device{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID(uid)},
		Spec:       devicesv1beta1.DeviceSpec{NodeName: node},
	}
	if model != "" {
		d.Spec.DeviceModelRef = &devicesv1beta1.DeviceModelReference{Name: model}
	}
	return d
}

func TestGraphDevices(t *testing.T) {
	g := New()
	g.UpsertNode(edgeNode("edge-1"))
	g.UpsertNode(edgeNode("edge-2"))
	// A device known before its node becomes an edge node joins the set when it does.
	g.UpsertDevice(device("late", "edge-3", "m", "u-late"))
	g.UpsertDevice(device("d1", "edge-1", "thermo", "u1"))
	g.UpsertDevice(device("d2", "edge-1", "thermo", "u2"))
	g.UpsertDevice(device("d3", "edge-2", "", "u3"))
	g.UpsertDevice(device("unbound", "", "thermo", "u4"))

	want1 := []string{"null/node/edge-1", "ns/device/d1", "ns/device/d2", "ns/devicemodel/thermo"}
	if got := keyStrings(g.Referenced("edge-1")); !slices.Equal(got, want1) {
		t.Fatalf("edge-1 set %v, want %v", got, want1)
	}
	if got := keyStrings(g.Referenced("edge-2")); !slices.Equal(got, []string{"null/node/edge-2", "ns/device/d3"}) {
		t.Fatalf("edge-2 set %v", got)
	}
	if node, uid, ok := g.Device("ns", "d1"); !ok || node != "edge-1" || uid != "u1" {
		t.Errorf("Device(d1) = %q %q %v", node, uid, ok)
	}
	if _, _, ok := g.Device("ns", "unbound"); ok {
		t.Error("an unbound device is known")
	}

	// The model is reference counted: it stays while d2 uses it.
	g.DeleteDevice("ns", "d1")
	if !g.Allows("edge-1", DeviceModelKey("ns", "thermo")) || g.Allows("edge-1", DeviceKey("ns", "d1")) {
		t.Fatalf("after deleting d1: %v", keyStrings(g.Referenced("edge-1")))
	}
	// Moving d2 to edge-2 takes it and its model along.
	g.UpsertDevice(device("d2", "edge-2", "thermo", "u2"))
	if got := keyStrings(g.Referenced("edge-1")); !slices.Equal(got, []string{"null/node/edge-1"}) {
		t.Fatalf("edge-1 after the move %v", got)
	}
	if got := g.Holders(DeviceModelKey("ns", "thermo")); !slices.Equal(got, []string{"edge-2"}) {
		t.Fatalf("model holders %v", got)
	}
	// Changing the model releases the old one.
	g.UpsertDevice(device("d2", "edge-2", "hygro", "u2"))
	want2 := []string{"null/node/edge-2", "ns/device/d2", "ns/device/d3", "ns/devicemodel/hygro"}
	if got := keyStrings(g.Referenced("edge-2")); !slices.Equal(got, want2) {
		t.Fatalf("edge-2 after the model change %v, want %v", got, want2)
	}
	// Re-created under the same name: same place, new uid.
	g.UpsertDevice(device("d2", "edge-2", "hygro", "u2b"))
	if _, uid, _ := g.Device("ns", "d2"); uid != "u2b" {
		t.Errorf("uid after re-creation %q", uid)
	}
	// Unbinding forgets it.
	g.UpsertDevice(device("d2", "", "hygro", "u2b"))
	if g.Allows("edge-2", DeviceKey("ns", "d2")) || g.Allows("edge-2", DeviceModelKey("ns", "hygro")) {
		t.Fatalf("unbound device still in the set: %v", keyStrings(g.Referenced("edge-2")))
	}

	g.UpsertNode(edgeNode("edge-3"))
	if got := keyStrings(g.Referenced("edge-3")); !slices.Equal(got, []string{"null/node/edge-3", "ns/device/late", "ns/devicemodel/m"}) {
		t.Fatalf("edge-3 set %v", got)
	}
	counts := g.DeviceCounts()
	if counts["edge-1"] != 0 || counts["edge-2"] != 1 || counts["edge-3"] != 1 || len(counts) != 3 {
		t.Errorf("DeviceCounts %v", counts)
	}
	// A node losing the edge label loses its devices from every answer, and gets them back.
	g.DeleteNode("edge-3")
	if g.Allows("edge-3", DeviceKey("ns", "late")) {
		t.Error("deleted node still allowed its device")
	}
	g.UpsertNode(edgeNode("edge-3"))
	if !g.Allows("edge-3", DeviceModelKey("ns", "m")) {
		t.Error("re-added node lost its device's model")
	}
}
