package wire

import (
	"encoding/json"
	"regexp"
	"strconv"
	"testing"
	"time"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewIDIsUUIDv4(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := NewID()
		if !uuidV4.MatchString(id) {
			t.Fatalf("NewID() = %q, not a canonical UUID v4", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestNewMessage(t *testing.T) {
	before := time.Now().UnixMilli()
	route := Route{Source: "edged", Group: GroupResource, Operation: OpUpdate, Resource: "default/podstatus/web-1"}
	m := NewMessage(route, json.RawMessage(`{"phase":"Running"}`))
	after := time.Now().UnixMilli()

	if !uuidV4.MatchString(m.Header.ID) {
		t.Errorf("id %q is not a UUID v4", m.Header.ID)
	}
	if m.Header.Timestamp < before || m.Header.Timestamp > after {
		t.Errorf("timestamp %d not in [%d, %d]: want Unix milliseconds", m.Header.Timestamp, before, after)
	}
	if m.Route != route || m.Header.ParentID != "" || m.Header.Sync {
		t.Errorf("NewMessage = %+v", m)
	}
	if _, err := Encode(m); err != nil {
		t.Errorf("a new message must encode: %v", err)
	}
}

func TestReplyAckError(t *testing.T) {
	req := NewMessage(Route{Source: "metamanager", Destination: "edgecontroller", Group: GroupResource,
		Operation: OpQuery, Resource: "default/configmap/cfg"}, nil)
	req.Header.Sync = true

	// A reply answers the request: parent id, same group and resource, modules swapped.
	wantRoute := Route{Source: "edgecontroller", Destination: "metamanager", Group: GroupResource,
		Operation: OpResponse, Resource: "default/configmap/cfg"}
	reply := req.Reply(json.RawMessage(`{"data":{}}`))
	if reply.Header.ParentID != req.Header.ID || reply.Header.ID == req.Header.ID || reply.Route != wantRoute ||
		string(reply.Content) != `{"data":{}}` || reply.Header.Sync {
		t.Errorf("Reply = %+v", reply)
	}

	ack := req.Ack()
	if ack.Header.ParentID != req.Header.ID || ack.Route != wantRoute || string(ack.Content) != `"OK"` {
		t.Errorf("Ack = %+v (content %s)", ack, ack.Content)
	}

	reason := "configmaps \"cfg\" not found\n\tat <edge>\x01"
	e := req.Error(reason)
	wantRoute.Operation = OpError
	if e.Header.ParentID != req.Header.ID || e.Route != wantRoute {
		t.Errorf("Error = %+v", e)
	}
	var got string
	if err := json.Unmarshal(e.Content, &got); err != nil || got != reason {
		t.Errorf("Error content %s decodes to %q, %v; want %q", e.Content, got, err, reason)
	}
	for _, m := range []*Message{reply, ack, e} {
		if _, err := Encode(m); err != nil {
			t.Errorf("answer does not encode: %v", err)
		}
	}
}

// The keepalive is exactly the message of the spec.
func TestKeepalive(t *testing.T) {
	m := NewKeepalive()
	enc, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"header":{"msg_id":"` + m.Header.ID + `","timestamp":` + strconv.FormatInt(m.Header.Timestamp, 10) + `},` +
		`"route":{"source":"websocket","group":"resource","operation":"keepalive","resource":"node"},"content":"ping"}`
	if string(enc) != want {
		t.Errorf("keepalive =\n%s\nwant\n%s", enc, want)
	}
	if !m.IsKeepalive() {
		t.Error("IsKeepalive(NewKeepalive()) = false")
	}
	if NewMessage(Route{Group: GroupResource, Operation: OpUpdate, Resource: "node"}, nil).IsKeepalive() {
		t.Error("an update is not a keepalive")
	}
}

func TestAppendQuoted(t *testing.T) {
	for _, s := range []string{"", "plain", `"\`, "tab\tnl\ncr\r\x00\x1f\x7f", "héllo ✓ 😀", "bad\xffutf8", "\u2028<>&"} {
		q := appendQuoted(nil, s)
		var back string
		if err := json.Unmarshal(q, &back); err != nil {
			t.Errorf("appendQuoted(%q) = %s: not JSON: %v", s, q, err)
			continue
		}
		want := string([]rune(s)) // invalid UTF-8 becomes U+FFFD, as encoding/json does
		if back != want {
			t.Errorf("appendQuoted(%q) = %s, decodes to %q", s, q, back)
		}
		d := decoder{data: q, maxDepth: 1}
		if err := d.skipValue(0); err != nil || d.pos != len(q) {
			t.Errorf("our decoder refuses appendQuoted(%q) = %s: %v", s, q, err)
		}
	}
}
