package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestInventoryRoundTrip(t *testing.T) {
	in := Inventory{Items: []InventoryItem{
		{Key: "default/pod/web-1", UID: "u1", ResourceVersion: "10"},
		{Key: "null/node/edge-1", UID: "u2", ResourceVersion: "7"},
		{Key: "default/configmap/cfg", UID: "u3", ResourceVersion: "9"},
	}}
	m, err := NewInventoryMessage(in)
	if err != nil {
		t.Fatal(err)
	}
	wireBytes, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(wireBytes, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeInventory(back)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d items, want 3", len(got))
	}
	if it := got[Key{Namespace: "", Type: "node", Name: "edge-1"}]; it.UID != "u2" || it.ResourceVersion != "7" {
		t.Fatalf("cluster-scoped item: %+v", it)
	}
	if !strings.Contains(string(m.Content), `"default/configmap/cfg"`) ||
		strings.Index(string(m.Content), "configmap") > strings.Index(string(m.Content), "default/pod") {
		t.Fatalf("items not sorted by key: %s", m.Content)
	}
}

func TestDecodeInventoryRejects(t *testing.T) {
	msg := func(content string) *Message {
		m, _ := NewInventoryMessage(Inventory{})
		m.Content = json.RawMessage(content)
		return m
	}
	cases := map[string]struct {
		m    *Message
		want string
	}{
		"not inventory":   {NewMessage(Route{Group: GroupResource, Operation: OpUpdate, Resource: "default/pod/a"}, json.RawMessage(`{}`)), "not an inventory"},
		"unknown field":   {msg(`{"items":[],"extra":1}`), `unknown field "extra"`},
		"bad key":         {msg(`{"items":[{"key":"Default/pod/a","uid":"u","resourceVersion":"1"}]}`), "namespace"},
		"no name":         {msg(`{"items":[{"key":"default/pod","uid":"u","resourceVersion":"1"}]}`), "names no object"},
		"duplicate":       {msg(`{"items":[{"key":"default/pod/a"},{"key":"default/pod/a"}]}`), "listed twice"},
		"long uid":        {msg(`{"items":[{"key":"default/pod/a","uid":"` + strings.Repeat("u", MaxIDLength+1) + `"}]}`), "longer than"},
		"not an object":   {msg(`[1]`), "inventory"},
		"wrong item type": {msg(`{"items":[{"key":1}]}`), "inventory"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeInventory(tc.m)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

// FuzzDecodeInventory: edge-supplied inventory content never panics the decoder, and every key
// it accepts formats back to the string the edge sent.
func FuzzDecodeInventory(f *testing.F) {
	f.Add([]byte(`{"items":[{"key":"default/pod/web-1","uid":"u1","resourceVersion":"10"}]}`))
	f.Add([]byte(`{"items":[{"key":"null/node/edge-1","uid":"","resourceVersion":""}]}`))
	f.Add([]byte(`{"items":null}`))
	f.Add([]byte(`{"items":[{"key":"default/pod/a"},{"key":"default/pod/a"}]}`))
	f.Fuzz(func(t *testing.T, content []byte) {
		m, _ := NewInventoryMessage(Inventory{})
		m.Content = content
		got, err := DecodeInventory(m)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for k, it := range got {
			if k.String() != it.Key {
				t.Fatalf("key %q parsed to %v which formats as %q", it.Key, k, k.String())
			}
		}
	})
}
