package edgecontroller

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/cloud/devicecontroller"
	"github.com/skerry-io/skerry/cloud/edgecontroller/graph"
	devfake "github.com/skerry-io/skerry/pkg/client/clientset/versioned/fake"
)

func testDevice(name, node, model string) *devicesv1beta1.Device {
	d := &devicesv1beta1.Device{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1",
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: devicesv1beta1.DeviceSpec{NodeName: node},
	}
	if model != "" {
		d.Spec.DeviceModelRef = &devicesv1beta1.DeviceModelReference{Name: model}
	}
	return d
}

func testModel(name string) *devicesv1beta1.DeviceModel {
	return &devicesv1beta1.DeviceModel{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name,
		UID: types.UID("uid-" + name), ResourceVersion: "1"}, Spec: devicesv1beta1.DeviceModelSpec{Protocol: "modbus"}}
}

type deviceFixture struct {
	*fixture
	devices *devfake.Clientset
}

// startWithDevices runs EdgeController with a DeviceController feeding its graph; served says
// whether the fake API server serves the device API.
func startWithDevices(t *testing.T, served bool, objs []runtime.Object, devObjs ...runtime.Object) *deviceFixture {
	t.Helper()
	dc := devfake.NewSimpleClientset(devObjs...)
	if served {
		dc.Resources = []*metav1.APIResourceList{{
			GroupVersion: devicesv1beta1.SchemeGroupVersion.String(),
			APIResources: []metav1.APIResource{{Name: "devices"}, {Name: "devicemodels"}, {Name: "devicestatuses"}},
		}}
	}
	f := &fixture{client: fake.NewClientset(objs...), sink: &sink{}, tokens: &fakeTokens{}}
	g := graph.New()
	log := slog.New(slog.DiscardHandler)
	devs, err := devicecontroller.New(devicecontroller.Config{Client: dc, Graph: g, Logger: log,
		Changed: func(node string) { f.c.NodeChanged(node) }, ProbeInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Client: f.client, Hub: f.sink, Tokens: f.tokens, Devices: devs, Graph: g, Workers: 2, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	f.c = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- devs.Run(ctx) }()
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		}
	})
	return &deviceFixture{fixture: f, devices: dc}
}

func TestDevicesJoinTheirNodeSet(t *testing.T) {
	f := startWithDevices(t, true, []runtime.Object{edgeNode("edge-1"), edgeNode("edge-2")},
		testDevice("d1", "edge-1", "thermo"), testDevice("d2", "edge-1", "later"),
		testDevice("elsewhere", "cloud-node", "thermo"), testModel("thermo"))
	ctx := context.Background()
	devs := f.devices.DevicesV1beta1()

	// The model d2 names does not exist yet: absent, not an error.
	want := []string{"ns/device/d1", "ns/device/d2", "ns/devicemodel/thermo", "null/node/edge-1"}
	if got := desiredKeys(t, f.c, "edge-1"); !slices.Equal(got, want) {
		t.Fatalf("edge-1 desired %v, want %v", got, want)
	}
	if got := desiredKeys(t, f.c, "edge-2"); !slices.Equal(got, []string{"null/node/edge-2"}) {
		t.Fatalf("edge-2 desired %v", got)
	}

	// The content is the whole object with its type, without managedFields, and the query
	// scope includes it.
	raw, ok := f.c.Object("edge-1", graph.DeviceKey("ns", "d1"))
	if !ok {
		t.Fatal("query of d1 refused")
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	md := got["metadata"].(map[string]any)
	if got["apiVersion"] != "devices.kubeedge.io/v1beta1" || got["kind"] != "Device" || md["managedFields"] != nil || md["uid"] != "uid-d1" {
		t.Errorf("device content %s", raw)
	}
	raw, ok = f.c.Object("edge-1", graph.DeviceModelKey("ns", "thermo"))
	var model devicesv1beta1.DeviceModel
	if !ok || json.Unmarshal(raw, &model) != nil || model.Kind != "DeviceModel" || model.Spec.Protocol != "modbus" {
		t.Errorf("model content %s %v", raw, ok)
	}
	if _, ok := f.c.Object("edge-2", graph.DeviceKey("ns", "d1")); ok {
		t.Error("edge-2 may read edge-1's device")
	}

	// A model created after its device reaches the node.
	if _, err := devs.DeviceModels("ns").Create(ctx, testModel("later"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-1 insert ns/devicemodel/later")

	// Moving d1 takes it and its model (no other device of edge-1 uses it) to edge-2.
	moved := testDevice("d1", "edge-2", "thermo")
	moved.ResourceVersion = "2"
	if _, err := devs.Devices("ns").Update(ctx, moved, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-1 delete ns/device/d1", "edge-1 delete ns/devicemodel/thermo",
		"edge-2 insert ns/device/d1", "edge-2 insert ns/devicemodel/thermo")

	// Changing d1's model swaps the models on edge-2.
	remodel := testDevice("d1", "edge-2", "later")
	remodel.ResourceVersion = "3"
	if _, err := devs.Devices("ns").Update(ctx, remodel, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-2 update ns/device/d1", "edge-2 delete ns/devicemodel/thermo", "edge-2 insert ns/devicemodel/later")

	// A model update reaches every holder; deleting the last device deletes its model too.
	upd := testModel("later")
	upd.ResourceVersion = "2"
	if _, err := devs.DeviceModels("ns").Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-1 update ns/devicemodel/later", "edge-2 update ns/devicemodel/later")
	if err := devs.Devices("ns").Delete(ctx, "d2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-1 delete ns/device/d2", "edge-1 delete ns/devicemodel/later")
	if err := devs.DeviceModels("ns").Delete(ctx, "later", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitOps(t, "edge-2 delete ns/devicemodel/later")
	if got := desiredKeys(t, f.c, "edge-2"); !slices.Equal(got, []string{"ns/device/d1", "null/node/edge-2"}) {
		t.Fatalf("edge-2 desired %v", got)
	}
}

// Without the device CRDs cloudcore still syncs, and nodes get no devices.
func TestDeviceAPINotServed(t *testing.T) {
	f := startWithDevices(t, false, []runtime.Object{edgeNode("edge-1")}, testDevice("d1", "edge-1", ""))
	if got := desiredKeys(t, f.c, "edge-1"); !slices.Equal(got, []string{"null/node/edge-1"}) {
		t.Fatalf("edge-1 desired %v", got)
	}
	if !f.c.Synced() {
		t.Fatal("not synced")
	}
}
