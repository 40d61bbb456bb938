package v1beta1

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	cbor "k8s.io/apimachinery/pkg/runtime/serializer/cbor/direct"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// FreeForm is a JSON object whose content the API does not interpret: protocol settings,
// register addresses, mapper extensions. It is kept as JSON text, so every field and every
// number (large integers included) survives a round trip through the API unchanged.
//
// +kubebuilder:validation:Type=object
// +kubebuilder:pruning:PreserveUnknownFields
// +k8s:deepcopy-gen=false
type FreeForm struct {
	// raw is a compact JSON object, or nil for the empty object.
	raw []byte
}

// ErrNotObject is returned when a FreeForm is given a value that is not an object.
var ErrNotObject = errors.New("free-form value must be a JSON object")

// NewFreeForm returns the FreeForm holding v encoded as JSON. v must encode to a JSON object
// (a struct or a map).
func NewFreeForm(v any) (*FreeForm, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode free-form value: %w", err)
	}
	f := &FreeForm{}
	if err := f.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	return f, nil
}

// JSON returns the object as compact JSON text; the caller may modify the returned slice.
func (f *FreeForm) JSON() []byte {
	if f == nil || f.raw == nil {
		return []byte("{}")
	}
	return bytes.Clone(f.raw)
}

// Decode unmarshals the object into v, like json.Unmarshal.
func (f *FreeForm) Decode(v any) error {
	return json.Unmarshal(f.JSON(), v)
}

// Fields returns the object's top-level fields, each as its JSON text.
func (f *FreeForm) Fields() (map[string]json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if err := f.Decode(&fields); err != nil {
		return nil, err
	}
	return fields, nil
}

// MarshalJSON implements json.Marshaler.
func (f FreeForm) MarshalJSON() ([]byte, error) {
	return f.JSON(), nil
}

// UnmarshalJSON implements json.Unmarshaler. It rejects anything but a JSON object; null
// leaves the empty object.
func (f *FreeForm) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		f.raw = nil
		return nil
	}
	if len(b) == 0 || b[0] != '{' {
		return ErrNotObject
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return fmt.Errorf("decode free-form value: %w", err)
	}
	f.raw = buf.Bytes()
	return nil
}

// MarshalCBOR implements the CBOR marshaler used by Kubernetes clients that speak CBOR.
func (f FreeForm) MarshalCBOR() ([]byte, error) {
	var obj map[string]any
	if err := utiljson.Unmarshal(f.JSON(), &obj); err != nil {
		return nil, fmt.Errorf("decode free-form value: %w", err)
	}
	return cbor.Marshal(obj)
}

// UnmarshalCBOR implements the CBOR unmarshaler used by Kubernetes clients that speak CBOR.
func (f *FreeForm) UnmarshalCBOR(b []byte) error {
	var obj any
	if err := cbor.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("decode free-form value: %w", err)
	}
	if obj == nil {
		f.raw = nil
		return nil
	}
	if _, ok := obj.(map[string]any); !ok {
		return ErrNotObject
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encode free-form value: %w", err)
	}
	f.raw = raw
	return nil
}

// DeepCopyInto copies f into out.
func (f *FreeForm) DeepCopyInto(out *FreeForm) {
	out.raw = bytes.Clone(f.raw)
}

// DeepCopy returns a copy of f.
func (f *FreeForm) DeepCopy() *FreeForm {
	if f == nil {
		return nil
	}
	out := new(FreeForm)
	f.DeepCopyInto(out)
	return out
}
