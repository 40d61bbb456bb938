package store

import (
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

// FuzzOutboxDecode feeds decodeEntry what a damaged or hand-edited edge.db could hold in an
// outbox row. It must never panic, and whatever it accepts must be a message the sender can
// put on the wire and whose resource is the row's key.
func FuzzOutboxDecode(f *testing.F) {
	good, err := wire.Encode(testMsg("default/podstatus/web-1", `{"phase":"Running"}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add("default/podstatus/web-1", int64(1), good)
	f.Add("default/podstatus/web-2", int64(1), good) // key mismatch
	f.Add("default/podstatus/web-1", int64(7), good) // bad class
	f.Add("default/event/e", int64(0), []byte(`{}`))
	f.Add("", int64(0), []byte{})
	f.Add("null/nodestatus/n", int64(0), good[:len(good)/2])
	f.Add("default/event/e", int64(0), []byte(`{"header":{"msg_id":"a","timestamp":1},"route":{"group":"g","operation":"o","resource":"default/event/e"},"content":[[[[[]]]]]}`))
	f.Fuzz(func(t *testing.T, key string, class int64, data []byte) {
		e, err := decodeEntry(1, 1, key, class, data, 0)
		if err != nil {
			return
		}
		if e.Class != FIFO && e.Class != Coalesced {
			t.Fatalf("accepted class %d", class)
		}
		if e.Message.Route.Resource == "" || e.Key != key {
			t.Fatalf("accepted entry with key %q for row key %q", e.Key, key)
		}
		if _, err := wire.Encode(e.Message); err != nil {
			t.Fatalf("accepted a message that does not encode: %v", err)
		}
	})
}
