package upstream

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apitypes "k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/cloud/hub"
	devfake "github.com/skerry-io/skerry/pkg/client/clientset/versioned/fake"
	"github.com/skerry-io/skerry/pkg/wire"
)

func deviceStatusJSON(ns, name, uid, twinValue string) string {
	return `{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceStatus","metadata":{"namespace":"` + ns +
		`","name":"` + name + `","ownerReferences":[{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","name":"` +
		name + `","uid":"` + uid + `","controller":true}]},"status":{"twins":[{"propertyName":"temperature",` +
		`"reported":{"value":"` + twinValue + `","metadata":{"timestamp":"1763776800000","type":"float"}},` +
		`"observedDesired":{"value":"20","metadata":{"timestamp":"1763776790000"}}}],"state":"online","lastOnlineTime":"2026-11-22T02:00:00Z"}}`
}

// devVerbs lists the device client's actions as "verb resource[/subresource]".
func devVerbs(c *devfake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	c.ClearActions()
	return out
}

func getDeviceStatus(t *testing.T, e *env, name string) *devicesv1beta1.DeviceStatus {
	t.Helper()
	ds, err := e.devices.DevicesV1beta1().DeviceStatuses("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.devices.ClearActions()
	return ds
}

func TestDeviceStatusCreateThenUpdateStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpUpdate, "default/devicestatus/thermo", deviceStatusJSON("default", "thermo", "uid-thermo", "21.5"))); err != nil {
		t.Fatal(err)
	}
	if got, want := devVerbs(e.devices), []string{"get devicestatuses", "create devicestatuses", "update devicestatuses/status"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	ds := getDeviceStatus(t, e, "thermo")
	refs := ds.OwnerReferences
	if len(refs) != 1 || refs[0].Kind != "Device" || refs[0].APIVersion != "devices.kubeedge.io/v1beta1" || refs[0].Name != "thermo" ||
		refs[0].UID != "uid-thermo" || refs[0].Controller == nil || !*refs[0].Controller ||
		refs[0].BlockOwnerDeletion == nil || *refs[0].BlockOwnerDeletion {
		t.Errorf("owner references %+v", refs)
	}
	st := ds.Status
	if st.State != "online" || st.LastOnlineTime != "2026-11-22T02:00:00Z" || len(st.Twins) != 1 ||
		st.Twins[0].Reported.Value != "21.5" || st.Twins[0].ObservedDesired.Value != "20" ||
		st.Twins[0].Reported.Metadata["type"] != "float" {
		t.Errorf("status %+v", st)
	}

	// A new value: read, update status.
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpUpdate, "default/devicestatus/thermo", deviceStatusJSON("default", "thermo", "uid-thermo", "22"))); err != nil {
		t.Fatal(err)
	}
	if got, want := devVerbs(e.devices), []string{"get devicestatuses", "update devicestatuses/status"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if v := getDeviceStatus(t, e, "thermo").Status.Twins[0].Reported.Value; v != "22" {
		t.Errorf("reported %q after update", v)
	}
	// The same again (the edge resends): nothing is written.
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpUpdate, "default/devicestatus/thermo", deviceStatusJSON("default", "thermo", "uid-thermo", "22"))); err != nil {
		t.Fatal(err)
	}
	if got := devVerbs(e.devices); !slices.Equal(got, []string{"get devicestatuses"}) {
		t.Fatalf("unchanged status wrote: %v", got)
	}
	if c := e.h.Stats()[KindDeviceStatus]; c.Handled != 3 || c.Failed != 0 {
		t.Errorf("stats %+v", c)
	}
}

func existingStatus(uid string, extensions bool) *devicesv1beta1.DeviceStatus {
	ds := &devicesv1beta1.DeviceStatus{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "thermo", ResourceVersion: "5"},
		Status: devicesv1beta1.DeviceStatusStatus{State: "offline"}}
	if uid != "" {
		ds.OwnerReferences = []metav1.OwnerReference{{APIVersion: "devices.kubeedge.io/v1beta1", Kind: "Device", Name: "thermo",
			UID: apitypes.UID(uid), Controller: new(true)}}
	}
	if extensions {
		ext, _ := devicesv1beta1.NewFreeForm(map[string]any{"vendor": map[string]any{"fw": "1.2"}})
		ds.Status.Extensions = ext
	}
	return ds
}

func TestDeviceStatusKeepsExtensionsAndRetriesConflicts(t *testing.T) {
	e := newEnv(t, existingStatus("uid-thermo", true))
	conflicts := 0
	e.devices.PrependReactor("update", "devicestatuses", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" && conflicts < 2 {
			conflicts++
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "devices.kubeedge.io", Resource: "devicestatuses"}, "thermo", errors.New("stale"))
		}
		return false, nil, nil
	})
	if _, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/devicestatus/thermo", deviceStatusJSON("default", "thermo", "uid-thermo", "1"))); err != nil {
		t.Fatal(err)
	}
	want := []string{"get devicestatuses", "update devicestatuses/status", "get devicestatuses", "update devicestatuses/status",
		"get devicestatuses", "update devicestatuses/status"}
	if got := devVerbs(e.devices); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	ds := getDeviceStatus(t, e, "thermo")
	if ds.Status.State != "online" || ds.Status.Extensions == nil || !strings.Contains(string(ds.Status.Extensions.JSON()), `"fw":"1.2"`) {
		t.Errorf("status %+v (extensions %s)", ds.Status, ds.Status.Extensions.JSON())
	}

	// Conflicts without end give up with a plain error.
	conflicts = -1000
	_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/devicestatus/thermo", deviceStatusJSON("default", "thermo", "uid-thermo", "2")))
	if !apierrors.IsConflict(err) || errors.Is(err, hub.ErrTransient) {
		t.Fatalf("endless conflicts: %v", err)
	}
}

func TestDeviceStatusOwnership(t *testing.T) {
	// An earlier Device's status waits for the garbage collector: transient, nothing written.
	e := newEnv(t, existingStatus("uid-old", false))
	_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/devicestatus/thermo", deviceStatusJSON("default", "thermo", "uid-thermo", "1")))
	if !errors.Is(err, hub.ErrTransient) || !strings.Contains(err.Error(), "earlier Device") {
		t.Fatalf("status of an earlier device: %v", err)
	}
	if got := devVerbs(e.devices); !slices.Equal(got, []string{"get devicestatuses"}) {
		t.Fatalf("calls %v", got)
	}

	// One without an owner is adopted, then written.
	e = newEnv(t, existingStatus("", false))
	if _, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/devicestatus/thermo", deviceStatusJSON("default", "thermo", "uid-thermo", "1"))); err != nil {
		t.Fatal(err)
	}
	if got, want := devVerbs(e.devices), []string{"get devicestatuses", "update devicestatuses", "update devicestatuses/status"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if ds := getDeviceStatus(t, e, "thermo"); len(ds.OwnerReferences) != 1 || ds.OwnerReferences[0].UID != "uid-thermo" {
		t.Errorf("not adopted: %+v", ds.OwnerReferences)
	}
}

func TestDeviceStatusRefusals(t *testing.T) {
	tests := []struct {
		name, res, content, why string
		denied                  bool
	}{
		{"another node's device", "default/devicestatus/pump", deviceStatusJSON("default", "pump", "uid-pump", "1"), `bound to "edge-2"`, true},
		{"unknown device", "default/devicestatus/ghost", deviceStatusJSON("default", "ghost", "u", "1"), "not bound to this node", true},
		{"re-created device", "default/devicestatus/thermo", deviceStatusJSON("default", "thermo", "uid-old", "1"), "re-created", true},
		{"name mismatch", "default/devicestatus/thermo", deviceStatusJSON("default", "pump", "uid-thermo", "1"), "names device status", true},
		{"wrong kind", "default/devicestatus/thermo", strings.Replace(deviceStatusJSON("default", "thermo", "uid-thermo", "1"), `"kind":"DeviceStatus"`, `"kind":"Device"`, 1), "want devices.kubeedge.io/v1beta1 DeviceStatus", false},
		{"twice the same property", "default/devicestatus/thermo", strings.Replace(deviceStatusJSON("default", "thermo", "uid-thermo", "1"),
			`"twins":[`, `"twins":[{"propertyName":"temperature"},`, 1), "appears twice", false},
		{"unnamed twin", "default/devicestatus/thermo", strings.Replace(deviceStatusJSON("default", "thermo", "uid-thermo", "1"),
			`"twins":[`, `"twins":[{"reported":{"value":"1"}},`, 1), "propertyName must be", false},
		{"twins of the wrong type", "default/devicestatus/thermo", strings.Replace(deviceStatusJSON("default", "thermo", "uid-thermo", "1"),
			`"state":"online"`, `"state":7`, 1), "device status", false},
		{"state too long", "default/devicestatus/thermo", strings.Replace(deviceStatusJSON("default", "thermo", "uid-thermo", "1"),
			`"state":"online"`, `"state":"`+strings.Repeat("x", 64)+`"`, 1), "state is longer", false},
	}
	for _, tt := range tests {
		e := newEnv(t)
		_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, tt.res, tt.content))
		var d *Denied
		if err == nil || !strings.Contains(err.Error(), tt.why) || errors.As(err, &d) != tt.denied || errors.Is(err, hub.ErrTransient) {
			t.Errorf("%s: %v, want an error with %q (denied %v)", tt.name, err, tt.why, tt.denied)
		}
		if !tt.denied && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v is not ErrMalformed", tt.name, err)
		}
		if got := devVerbs(e.devices); len(got) != 0 {
			t.Errorf("%s: API called: %v", tt.name, got)
		}
	}
}

func TestDeviceStatusTransient(t *testing.T) {
	e := newEnv(t)
	e.devices.PrependReactor("get", "devicestatuses", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd down")
	})
	_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/devicestatus/thermo", deviceStatusJSON("default", "thermo", "uid-thermo", "1")))
	if !errors.Is(err, hub.ErrTransient) {
		t.Fatalf("unavailable API server: %v, want transient", err)
	}
	if c := e.h.Stats()[KindDeviceStatus]; c.Transient != 1 {
		t.Errorf("stats %+v", c)
	}
}

func upload(topic string, payload []byte) string {
	return `{"topic":"` + topic + `","payload":"` + base64.StdEncoding.EncodeToString(payload) + `"}`
}

func TestUpload(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, topic := range []string{"$hw/events/upload/sensor", "$hw/events/upload/a/b", "SYS/dis/upload_records"} {
		if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpPublish, "null/mqttupload", upload(topic, []byte(`{"v":1}`)))); err != nil {
			t.Errorf("%s: %v", topic, err)
		}
	}
	if got := e.h.Uploads(); got["edge-1"] != 3 || len(got) != 1 {
		t.Errorf("uploads %v", got)
	}
	bad := []struct{ name, content, why string }{
		{"other topic", upload("$hw/events/device/x/twin/update", nil), "neither under"},
		{"prefix only", upload("$hw/events/upload/", nil), "neither under"},
		{"wildcard", upload("$hw/events/upload/#", nil), "without wildcards"},
		{"long topic", upload("$hw/events/upload/"+strings.Repeat("a", 1100), nil), "at most 1024"},
		{"too large", upload("$hw/events/upload/a", make([]byte, MaxUploadPayload+1)), "exceeds"},
		{"not base64", `{"topic":"$hw/events/upload/a","payload":"***"}`, "upload"},
		{"not an object", `"hello"`, "JSON object"},
		{"duplicate topic", `{"topic":"SYS/dis/upload_records","topic":"x","payload":""}`, "duplicate"},
	}
	for _, tt := range bad {
		_, err := e.h.Handle(ctx, "edge-1", msg(wire.OpPublish, "null/mqttupload", tt.content))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("%s: %v, want malformed with %q", tt.name, err, tt.why)
		}
	}
	// A node that is not a registered edge node is refused.
	_, err := e.h.Handle(ctx, "edge-9", msg(wire.OpPublish, "null/mqttupload", upload("SYS/dis/upload_records", nil)))
	var d *Denied
	if !errors.As(err, &d) {
		t.Errorf("unregistered node: %v", err)
	}
	if got := e.h.Uploads(); got["edge-1"] != 3 || len(got) != 1 {
		t.Errorf("uploads after refusals %v", got)
	}
	e.h.ForgetNode("edge-1")
	if got := e.h.Uploads(); len(got) != 0 {
		t.Errorf("uploads after ForgetNode %v", got)
	}
}
