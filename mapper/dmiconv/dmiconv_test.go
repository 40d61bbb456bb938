package dmiconv

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skerry-io/skerry/api/dmi/v1beta1"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := map[string]any{
		"ip":      "10.0.0.1",
		"port":    502,
		"slaveID": json.Number("7"),
		"scale":   0.5,
		"whole":   3.0, // integral floats travel as Int64Value
		"big":     uint64(1 << 63),
		"enabled": true,
		"raw":     []byte{1, 2},
		"nested":  map[string]any{"a": "b", "list": []any{"x", true}},
		"nothing": nil,
	}
	cv, err := EncodeConfigData(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := cv.Data["ip"].GetTypeUrl(); got != "type.googleapis.com/google.protobuf.StringValue" {
		t.Errorf("ip type = %s", got)
	}
	if got := cv.Data["port"].GetTypeUrl(); got != "type.googleapis.com/google.protobuf.Int64Value" {
		t.Errorf("port type = %s", got)
	}
	// Through the wire, as the mapper sees it.
	b, err := proto.Marshal(&v1beta1.ProtocolConfig{ConfigData: cv})
	if err != nil {
		t.Fatal(err)
	}
	var pc v1beta1.ProtocolConfig
	if err := proto.Unmarshal(b, &pc); err != nil {
		t.Fatal(err)
	}
	out, err := DecodeConfigData(pc.GetConfigData())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"ip":      "10.0.0.1",
		"port":    int64(502),
		"slaveID": int64(7),
		"scale":   0.5,
		"whole":   int64(3),
		"big":     uint64(1 << 63),
		"enabled": true,
		"raw":     []byte{1, 2},
		"nested":  map[string]any{"a": "b", "list": []any{"x", true}},
		"nothing": nil,
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("decoded\n%#v\nwant\n%#v", out, want)
	}
}

func TestEncodeConfigJSON(t *testing.T) {
	cv, err := EncodeConfigJSON([]byte(`{"register": 40001, "big": 9007199254740993, "f": 1.25}`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeConfigData(cv)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"register": int64(40001), "big": int64(9007199254740993), "f": 1.25}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got %#v, want %#v", out, want)
	}
	if cv, err := EncodeConfigJSON([]byte(" null ")); err != nil || cv != nil {
		t.Errorf("null: %v, %v", cv, err)
	}
	if _, err := EncodeConfigJSON([]byte(`[1]`)); err == nil {
		t.Error("array accepted as configData")
	}
}

func TestEncodeRejects(t *testing.T) {
	for name, v := range map[string]any{
		"struct": struct{}{},
		"func":   map[string]any{"x": []any{func() {}}},
	} {
		if _, err := EncodeConfigData(map[string]any{"k": v}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	deep := any("leaf")
	for range MaxDepth + 2 {
		deep = []any{deep}
	}
	if _, err := EncodeConfigData(map[string]any{"k": deep}); err == nil || !strings.Contains(err.Error(), "nested") {
		t.Errorf("deep nesting: %v", err)
	}
}

func TestDecodeKubeEdgeWrappers(t *testing.T) {
	mk := func(m proto.Message) *anypb.Any {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cv := &v1beta1.CustomizedValue{Data: map[string]*anypb.Any{
		"i32":   mk(wrapperspb.Int32(-5)),
		"u32":   mk(wrapperspb.UInt32(5)),
		"f32":   mk(wrapperspb.Float(1.5)),
		"s":     mk(&structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(2)}}),
		"l":     mk(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("a")}}),
		"other": {TypeUrl: "example.com/x/google.protobuf.StringValue", Value: mustMarshal(t, wrapperspb.String("h"))},
	}}
	out, err := DecodeConfigData(cv)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"i32": int64(-5), "u32": int64(5), "f32": 1.5,
		"s": map[string]any{"n": 2.0}, "l": []any{"a"}, "other": "h",
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got %#v, want %#v", out, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, a := range map[string]*anypb.Any{
		"unknown type": {TypeUrl: "type.googleapis.com/foo.Bar"},
		"garbage":      {TypeUrl: "type.googleapis.com/google.protobuf.StringValue", Value: []byte{0xff, 0xff}},
		"too big":      {TypeUrl: "type.googleapis.com/google.protobuf.StringValue", Value: make([]byte, MaxValueBytes+1)},
	} {
		if _, err := DecodeConfigData(&v1beta1.CustomizedValue{Data: map[string]*anypb.Any{"k": a}}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	m, err := DecodeConfigData(nil)
	if err != nil || m == nil || len(m) != 0 {
		t.Errorf("nil configData: %v, %v", m, err)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzDecodeConfigData feeds arbitrary wire bytes of a CustomizedValue to the decoder: it must
// return a value or an error, never panic, and what it decodes must encode again.
func FuzzDecodeConfigData(f *testing.F) {
	seed, err := EncodeConfigData(map[string]any{
		"a": "x", "b": int64(1), "c": 2.5, "d": true, "e": []byte("z"),
		"f": map[string]any{"g": []any{1.0, "h", nil}},
	})
	if err != nil {
		f.Fatal(err)
	}
	b, err := proto.Marshal(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 'k'})
	f.Fuzz(func(t *testing.T, data []byte) {
		var cv v1beta1.CustomizedValue
		if err := proto.Unmarshal(data, &cv); err != nil {
			return
		}
		m, err := DecodeConfigData(&cv)
		if err != nil {
			return
		}
		if _, err := EncodeConfigData(m); err != nil {
			// Non-finite floats decode fine but are not encodable; everything else must be.
			if !strings.Contains(err.Error(), "not finite") && !strings.Contains(err.Error(), "nested") {
				t.Fatalf("decoded %#v does not encode: %v", m, err)
			}
		}
	})
}
