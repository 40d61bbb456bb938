// Package dmiconv converts DMI configData (map<string, google.protobuf.Any>) to and from plain
// Go values. The edge encodes a Device's free-form configData with EncodeConfigData (or
// EncodeConfigJSON) when it pushes the device to a mapper; the mapper SDK decodes it with
// DecodeConfigData.
//
// Encoding, per top-level value: a string is a google.protobuf.StringValue, a bool a BoolValue,
// an integral number that fits int64 an Int64Value, any other number a DoubleValue, bytes a
// BytesValue, and an object, array or null a google.protobuf.Value (a JSON value; KubeEdge
// mappers that only know the scalar wrappers will not read those). Decoding accepts all the
// wrapper types (Int32/UInt32/UInt64/Float too), Struct, ListValue and Value.
//
// Decoded values are string, bool, int64 (all integer wrappers but UInt64Value beyond int64,
// which stays uint64), float64, []byte, map[string]any, []any or nil.
package dmiconv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/skerry-io/skerry/api/dmi/v1beta1"
)

// Limits on what a decoder accepts from the other side of the socket.
const (
	// MaxKeys bounds the entries of one configData.
	MaxKeys = 1024
	// MaxValueBytes bounds one encoded value.
	MaxValueBytes = 256 << 10
	// MaxDepth bounds the nesting of objects and arrays.
	MaxDepth = 32
)

const typePrefix = "type.googleapis.com/"

// EncodeConfigData encodes m as DMI configData. A nil or empty m gives nil.
func EncodeConfigData(m map[string]any) (*v1beta1.CustomizedValue, error) {
	if len(m) == 0 {
		return nil, nil
	}
	if len(m) > MaxKeys {
		return nil, fmt.Errorf("configData has %d keys, limit %d", len(m), MaxKeys)
	}
	data := make(map[string]*anypb.Any, len(m))
	for k, v := range m {
		msg, err := encodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("configData %q: %w", k, err)
		}
		a, err := anypb.New(msg)
		if err != nil {
			return nil, fmt.Errorf("configData %q: %w", k, err)
		}
		data[k] = a
	}
	return &v1beta1.CustomizedValue{Data: data}, nil
}

// EncodeConfigJSON encodes a JSON object (a Device's configData as stored) as DMI configData,
// keeping integers exact. Empty input or null gives nil.
func EncodeConfigJSON(b []byte) (*v1beta1.CustomizedValue, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("configData is not a JSON object: %w", err)
	}
	return EncodeConfigData(m)
}

func encodeValue(v any) (proto.Message, error) {
	switch x := v.(type) {
	case string:
		return wrapperspb.String(x), nil
	case bool:
		return wrapperspb.Bool(x), nil
	case []byte:
		return wrapperspb.Bytes(x), nil
	case int:
		return wrapperspb.Int64(int64(x)), nil
	case int8:
		return wrapperspb.Int64(int64(x)), nil
	case int16:
		return wrapperspb.Int64(int64(x)), nil
	case int32:
		return wrapperspb.Int64(int64(x)), nil
	case int64:
		return wrapperspb.Int64(x), nil
	case uint8:
		return wrapperspb.Int64(int64(x)), nil
	case uint16:
		return wrapperspb.Int64(int64(x)), nil
	case uint32:
		return wrapperspb.Int64(int64(x)), nil
	case uint:
		return encodeUint(uint64(x)), nil
	case uint64:
		return encodeUint(x), nil
	case float32:
		return encodeFloat(float64(x))
	case float64:
		return encodeFloat(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return wrapperspb.Int64(i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("bad number %q", x.String())
		}
		return encodeFloat(f)
	case nil, map[string]any, []any:
		sv, err := toStructValue(v, 0)
		if err != nil {
			return nil, err
		}
		return sv, nil
	}
	return nil, fmt.Errorf("unsupported value type %T", v)
}

func encodeUint(u uint64) proto.Message {
	if u <= math.MaxInt64 {
		return wrapperspb.Int64(int64(u))
	}
	return wrapperspb.UInt64(u)
}

func encodeFloat(f float64) (proto.Message, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %v is not finite", f)
	}
	if f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 {
		return wrapperspb.Int64(int64(f)), nil
	}
	return wrapperspb.Double(f), nil
}

// toStructValue converts a JSON-shaped value to a google.protobuf.Value.
func toStructValue(v any, depth int) (*structpb.Value, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("nested deeper than %d", MaxDepth)
	}
	switch x := v.(type) {
	case map[string]any:
		fields := make(map[string]*structpb.Value, len(x))
		for k, e := range x {
			sv, err := toStructValue(e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			fields[k] = sv
		}
		return structpb.NewStructValue(&structpb.Struct{Fields: fields}), nil
	case []any:
		vals := make([]*structpb.Value, len(x))
		for i, e := range x {
			sv, err := toStructValue(e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			vals[i] = sv
		}
		return structpb.NewListValue(&structpb.ListValue{Values: vals}), nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, fmt.Errorf("bad number %q", x.String())
		}
		return structpb.NewNumberValue(f), nil
	}
	sv, err := structpb.NewValue(v)
	if err != nil {
		return nil, err
	}
	return sv, nil
}

// DecodeConfigData decodes DMI configData. A nil cv gives an empty, non-nil map.
func DecodeConfigData(cv *v1beta1.CustomizedValue) (map[string]any, error) {
	data := cv.GetData()
	if len(data) > MaxKeys {
		return nil, fmt.Errorf("configData has %d keys, limit %d", len(data), MaxKeys)
	}
	out := make(map[string]any, len(data))
	for k, a := range data {
		v, err := DecodeAny(a)
		if err != nil {
			return nil, fmt.Errorf("configData %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

// DecodeAny decodes one configData value. A nil Any decodes as nil.
func DecodeAny(a *anypb.Any) (any, error) {
	if a == nil {
		return nil, nil
	}
	if len(a.GetValue()) > MaxValueBytes {
		return nil, fmt.Errorf("value is %d bytes, limit %d", len(a.GetValue()), MaxValueBytes)
	}
	name, ok := strings.CutPrefix(a.GetTypeUrl(), typePrefix)
	if !ok {
		// Any allows other hosts; the type name is what follows the last slash.
		name = a.GetTypeUrl()[strings.LastIndexByte(a.GetTypeUrl(), '/')+1:]
	}
	var msg proto.Message
	switch name {
	case "google.protobuf.StringValue":
		msg = &wrapperspb.StringValue{}
	case "google.protobuf.BytesValue":
		msg = &wrapperspb.BytesValue{}
	case "google.protobuf.BoolValue":
		msg = &wrapperspb.BoolValue{}
	case "google.protobuf.Int32Value":
		msg = &wrapperspb.Int32Value{}
	case "google.protobuf.Int64Value":
		msg = &wrapperspb.Int64Value{}
	case "google.protobuf.UInt32Value":
		msg = &wrapperspb.UInt32Value{}
	case "google.protobuf.UInt64Value":
		msg = &wrapperspb.UInt64Value{}
	case "google.protobuf.FloatValue":
		msg = &wrapperspb.FloatValue{}
	case "google.protobuf.DoubleValue":
		msg = &wrapperspb.DoubleValue{}
	case "google.protobuf.Value":
		msg = &structpb.Value{}
	case "google.protobuf.Struct":
		msg = &structpb.Struct{}
	case "google.protobuf.ListValue":
		msg = &structpb.ListValue{}
	default:
		return nil, fmt.Errorf("unsupported value type %q", a.GetTypeUrl())
	}
	// The recursion limit keeps a hostile Struct from costing deep recursion while parsing.
	if err := (proto.UnmarshalOptions{RecursionLimit: 2*MaxDepth + 4}).Unmarshal(a.GetValue(), msg); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	switch m := msg.(type) {
	case *wrapperspb.StringValue:
		return m.GetValue(), nil
	case *wrapperspb.BytesValue:
		return m.GetValue(), nil
	case *wrapperspb.BoolValue:
		return m.GetValue(), nil
	case *wrapperspb.Int32Value:
		return int64(m.GetValue()), nil
	case *wrapperspb.Int64Value:
		return m.GetValue(), nil
	case *wrapperspb.UInt32Value:
		return int64(m.GetValue()), nil
	case *wrapperspb.UInt64Value:
		if m.GetValue() <= math.MaxInt64 {
			return int64(m.GetValue()), nil
		}
		return m.GetValue(), nil
	case *wrapperspb.FloatValue:
		return float64(m.GetValue()), nil
	case *wrapperspb.DoubleValue:
		return m.GetValue(), nil
	case *structpb.Value:
		return m.AsInterface(), nil
	case *structpb.Struct:
		return m.AsMap(), nil
	case *structpb.ListValue:
		return m.AsSlice(), nil
	}
	return nil, fmt.Errorf("unsupported value type %q", a.GetTypeUrl())
}
