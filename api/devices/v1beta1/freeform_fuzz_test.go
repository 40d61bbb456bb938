package v1beta1

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// jsonValue decodes JSON text into a comparable value, keeping numbers exact.
func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %q: %v", b, err)
	}
	return v
}

// FuzzFreeFormJSON: no input panics the decoder; what it accepts is a JSON object that encodes
// and decodes back to the same value. (Not the same bytes: encoding/json HTML-escapes the output
// of MarshalJSON, turning "&" into "\u0026", which is the same JSON string.)
func FuzzFreeFormJSON(f *testing.F) {
	f.Add([]byte(`{"ip":"192.168.1.2","port":502,"serial":{"baudRate":9600}}`))
	f.Add([]byte(`{"big":123456789012345678901234567890}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"a":`))
	f.Add([]byte(` { } `))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ff FreeForm
		if err := ff.UnmarshalJSON(data); err != nil {
			return
		}
		out, err := json.Marshal(ff)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", data, err)
		}
		if !json.Valid(out) || out[0] != '{' {
			t.Fatalf("accepted %q and encoded %q, not a JSON object", data, out)
		}
		var again FreeForm
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("own encoding %q rejected: %v", out, err)
		}
		if !reflect.DeepEqual(jsonValue(t, again.JSON()), jsonValue(t, ff.JSON())) {
			t.Fatalf("round trip changed %q to %q", ff.JSON(), again.JSON())
		}
	})
}

// FuzzFreeFormCBOR: no input panics the CBOR decoder; what it accepts is held as a JSON object.
func FuzzFreeFormCBOR(f *testing.F) {
	for _, seed := range []string{`{"ip":"10.0.0.1","port":502}`, `{}`, `{"nested":{"list":[1,"two",3.5,true,null]}}`} {
		ff, err := NewFreeForm(json.RawMessage(seed))
		if err != nil {
			f.Fatal(err)
		}
		b, err := ff.MarshalCBOR()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xf6})       // null
	f.Add([]byte{0x82, 1, 2}) // [1, 2]
	f.Fuzz(func(t *testing.T, data []byte) {
		var ff FreeForm
		if err := ff.UnmarshalCBOR(data); err != nil {
			return
		}
		if out := ff.JSON(); !json.Valid(out) || out[0] != '{' {
			t.Fatalf("accepted CBOR %x and holds %q, not a JSON object", data, out)
		}
		if _, err := ff.MarshalCBOR(); err != nil {
			t.Fatalf("accepted CBOR %x but cannot encode it again: %v", data, err)
		}
	})
}
