package v1beta1_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	cbor "k8s.io/apimachinery/pkg/runtime/serializer/cbor/direct"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
)

func TestFreeFormKeepsJSONExactly(t *testing.T) {
	// 2^53+1 does not survive a float64; the JSON text must come back as written (compacted).
	in := `{ "big": 9007199254740993, "f": 0.1, "nested": {"a": [1, "x", null, true]}, "nil": null }`
	var f devicesv1beta1.FreeForm
	if err := json.Unmarshal([]byte(in), &f); err != nil {
		t.Fatal(err)
	}
	want := `{"big":9007199254740993,"f":0.1,"nested":{"a":[1,"x",null,true]},"nil":null}`
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != want {
		t.Errorf("marshal = %s, want %s", out, want)
	}
	fields, err := f.Fields()
	if err != nil || string(fields["big"]) != "9007199254740993" || len(fields) != 4 {
		t.Errorf("fields = %v, %v", fields, err)
	}
}

func TestFreeFormEmptyAndNull(t *testing.T) {
	var zero devicesv1beta1.FreeForm
	if out, _ := json.Marshal(zero); string(out) != "{}" {
		t.Errorf("zero value marshals to %s, want {}", out)
	}
	var nilPtr *devicesv1beta1.FreeForm
	if got := string(nilPtr.JSON()); got != "{}" {
		t.Errorf("nil JSON() = %s", got)
	}
	// A null field stays absent (nil pointer), as for any other optional field.
	var pc devicesv1beta1.ProtocolConfig
	if err := json.Unmarshal([]byte(`{"configData":null}`), &pc); err != nil || pc.ConfigData != nil {
		t.Errorf("configData null: %v, %v", pc.ConfigData, err)
	}
}

func TestNewFreeForm(t *testing.T) {
	f, err := devicesv1beta1.NewFreeForm(map[string]any{"port": 502, "ip": "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		IP   string `json:"ip"`
		Port int    `json:"port"`
	}
	if err := f.Decode(&got); err != nil || got.IP != "10.0.0.1" || got.Port != 502 {
		t.Errorf("decode = %+v, %v", got, err)
	}
	if _, err := devicesv1beta1.NewFreeForm([]int{1}); !errors.Is(err, devicesv1beta1.ErrNotObject) {
		t.Errorf("slice: got %v, want ErrNotObject", err)
	}
	if _, err := devicesv1beta1.NewFreeForm(func() {}); err == nil {
		t.Error("func: no error")
	}
}

func TestFreeFormDeepCopyIsIndependent(t *testing.T) {
	f, err := devicesv1beta1.NewFreeForm(map[string]string{"a": "b"})
	if err != nil {
		t.Fatal(err)
	}
	d := &devicesv1beta1.Device{Spec: devicesv1beta1.DeviceSpec{Protocol: &devicesv1beta1.ProtocolConfig{ConfigData: f}}}
	c := d.DeepCopy()
	if err := json.Unmarshal([]byte(`{"a":"changed"}`), d.Spec.Protocol.ConfigData); err != nil {
		t.Fatal(err)
	}
	if got := string(c.Spec.Protocol.ConfigData.JSON()); got != `{"a":"b"}` {
		t.Errorf("copy changed with the original: %s", got)
	}
	// JSON() hands out a copy too.
	raw := c.Spec.Protocol.ConfigData.JSON()
	raw[0] = 'X'
	if got := string(c.Spec.Protocol.ConfigData.JSON()); got != `{"a":"b"}` {
		t.Errorf("JSON() aliases the internal buffer: %s", got)
	}
}

// CBOR is an alternative wire encoding Kubernetes clients may negotiate; a FreeForm must make the
// same round trip through it.
func TestFreeFormCBORRoundTrip(t *testing.T) {
	in := `{"big":9007199254740993,"f":1.5,"s":"x","l":[1,{"k":false}]}`
	var f devicesv1beta1.FreeForm
	if err := json.Unmarshal([]byte(in), &f); err != nil {
		t.Fatal(err)
	}
	b, err := cbor.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var back devicesv1beta1.FreeForm
	if err := cbor.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	var want, got any
	if err := json.Unmarshal([]byte(in), &want); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(back.JSON()))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if g := got.(map[string]any)["big"].(json.Number).String(); g != "9007199254740993" {
		t.Errorf("big integer after CBOR = %s", g)
	}
	// Compare the rest at float precision.
	if err := json.Unmarshal(back.JSON(), &got); err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(got)
	if !bytes.Equal(wantJSON, gotJSON) {
		t.Errorf("CBOR round trip = %s, want %s", gotJSON, wantJSON)
	}

	notObject, err := cbor.Marshal([]int{1})
	if err != nil {
		t.Fatal(err)
	}
	if err := back.UnmarshalCBOR(notObject); !errors.Is(err, devicesv1beta1.ErrNotObject) {
		t.Errorf("CBOR array: got %v, want ErrNotObject", err)
	}
}

func TestAddToScheme(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := devicesv1beta1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Device", "DeviceList", "DeviceModel", "DeviceModelList", "DeviceStatus", "DeviceStatusList"} {
		gvk := devicesv1beta1.SchemeGroupVersion.WithKind(kind)
		obj, err := scheme.New(gvk)
		if err != nil {
			t.Errorf("%s: %v", kind, err)
			continue
		}
		if obj.DeepCopyObject() == nil {
			t.Errorf("%s: DeepCopyObject returned nil", kind)
		}
	}
	if got := devicesv1beta1.Resource("devices"); got != (schema.GroupResource{Group: "devices.kubeedge.io", Resource: "devices"}) {
		t.Errorf("Resource = %v", got)
	}
	if got := devicesv1beta1.Kind("Device"); got != (schema.GroupKind{Group: "devices.kubeedge.io", Kind: "Device"}) {
		t.Errorf("Kind = %v", got)
	}
}
