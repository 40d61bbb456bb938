package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// FuzzDecode: Decode never panics, fails only with ErrInvalid or ErrTooLarge, and whatever it
// accepts is valid JSON that encoding/json reads the same way, and that Encode writes back
// into a form Decode accepts again as an equal message (and Encode then reproduces exactly).
func FuzzDecode(f *testing.F) {
	for _, file := range goldenFiles(f) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(msg(baseHeader, baseRoute, `{"a":[1,2.5e-3,true,null,"\u00e9\ud83d\ude00"]}`)))
	f.Add([]byte(msg(`"msg\u005fid":"a","timestamp":0,"sync":false`, baseRoute, `null`)))
	f.Add([]byte(`{"header":{` + baseHeader + `},"route":{` + baseRoute + `},"content":1,"route":{` + baseRoute + `}}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data, Limits{MaxDepth: 64})
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrInvalid nor ErrTooLarge", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Decode accepted invalid JSON %q", data)
		}
		var ref Message
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatalf("Decode accepted %q, encoding/json refuses it: %v", data, err)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, ref.Content); err != nil {
			t.Fatal(err)
		}
		ref.Content = c.Bytes()
		if !equal(m, &ref) {
			t.Fatalf("Decode(%q) = %+v, encoding/json reads %+v", data, *m, ref)
		}

		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode refuses what Decode accepted (%q): %v", data, err)
		}
		m2, err := Decode(enc, Limits{MaxDepth: 64})
		if err != nil {
			t.Fatalf("Decode refuses Encode's output %q: %v", enc, err)
		}
		if !equal(m, m2) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", *m, *m2)
		}
		enc2, err := Encode(m2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("Encode is not stable: %q then %q (%v)", enc, enc2, err)
		}
	})
}

// FuzzParseResource: every edge resource that parses formats back to itself, survives the
// hub's ToCloud/ToEdge trip, and the name checks agree with apimachinery.
func FuzzParseResource(f *testing.F) {
	for _, s := range []string{
		"default/pod/web-1", "null/node/edge-1", "default/configmap/cfg", "default/pod", "null/node",
		"kube-system/serviceaccounttoken/default", "default/event/web-1.17a2b3c4d5e6f7a8",
		"default/pod/a/b", "default//x", "/pod/a", "null/pod/..", "Default/Pod/Web", "a.b/c/d",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := string(data)
		checkNameRules(t, s)
		k, err := ParseResource(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseResource(%q): error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if got := k.String(); got != s {
			t.Fatalf("ParseResource(%q).String() = %q", s, got)
		}
		if err := k.Validate(); err != nil {
			t.Fatalf("ParseResource(%q) = %+v, which does not validate: %v", s, k, err)
		}
		cloud, err := ToCloud(s, "edge-1")
		if err != nil {
			t.Fatalf("ToCloud(%q): %v", s, err)
		}
		if back, err := ToEdge(cloud, "edge-1"); err != nil || back != s {
			t.Fatalf("ToEdge(ToCloud(%q)) = %q, %v", s, back, err)
		}
		if node, k2, err := ParseCloudResource(cloud); err != nil || node != "edge-1" || k2 != k {
			t.Fatalf("ParseCloudResource(%q) = %q, %+v, %v", cloud, node, k2, err)
		}
	})
}

// FuzzParseCloudResource: every cloud resource that parses formats back to itself, strips to
// its edge form for its own node and is refused for any other node.
func FuzzParseCloudResource(f *testing.F) {
	for _, s := range []string{
		"node/edge-1/default/pod/web-1", "node/edge-1/null/node/edge-1", "node/a.b/default/pod",
		"node/edge-1", "node//default/pod/a", "node/edge-1/node/edge-2/default/pod/a", "nodes/x/default/pod/a",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := string(data)
		node, k, err := ParseCloudResource(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseCloudResource(%q): error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if got := k.Cloud(node); got != s {
			t.Fatalf("ParseCloudResource(%q) formats back as %q", s, got)
		}
		if edge, err := ToEdge(s, node); err != nil || edge != k.String() {
			t.Fatalf("ToEdge(%q, %q) = %q, %v", s, node, edge, err)
		}
		other := "other-node"
		if node == other {
			other = "another-node"
		}
		if _, err := ToEdge(s, other); !errors.Is(err, ErrWrongNode) {
			t.Fatalf("ToEdge(%q, %q) = %v, want ErrWrongNode", s, other, err)
		}
	})
}
