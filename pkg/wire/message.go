package wire

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Operation is route.operation. The constants are the operations the KubeEdge contract names;
// peers may send others, so decoding accepts any well-formed value (see [Message.Validate]).
type Operation string

// Operations named by the KubeEdge contract.
const (
	OpInsert    Operation = "insert"
	OpUpdate    Operation = "update"
	OpPatch     Operation = "patch"
	OpDelete    Operation = "delete"
	OpQuery     Operation = "query"
	OpResponse  Operation = "response"
	OpError     Operation = "error"
	OpUpload    Operation = "upload"
	OpKeepalive Operation = "keepalive"
	// OpPublish carries a message an edge app published on MQTT up to the cloud
	// (docs/protocol.md, "Devices").
	OpPublish Operation = "publish"
)

// Group is route.group. Like [Operation] it is an open set on the wire.
type Group string

// Groups named by the KubeEdge contract.
const (
	GroupResource Group = "resource"
	GroupTwin     Group = "twin"
	GroupUser     Group = "user"
	GroupMeta     Group = "meta"
	GroupFunc     Group = "func"
)

// Module names and payloads of the keepalive, fixed by the KubeEdge contract.
const (
	SourceWebsocket  = "websocket"
	KeepaliveContent = `"ping"` // JSON text of the keepalive content
	AckContent       = `"OK"`   // JSON text of an ack's content
	keepaliveRes     = "node"
)

// Message is one KubeEdge message: one WebSocket text frame, or one length-prefixed frame on
// QUIC. The JSON tags document the wire names (and make encoding/json produce a compatible form),
// but the package's own codec ([Decode], [Encode]) is the one to use: it is strict and fast.
type Message struct {
	Header Header `json:"header"`
	Route  Route  `json:"route"`
	// Content is any JSON value, kept as raw JSON text. Decode always sets it (JSON null is
	// the four bytes "null"); a nil Content encodes as null.
	Content json.RawMessage `json:"content"`
}

// Header is the message header.
type Header struct {
	// ID is unique per message. New messages get a UUID v4; decoding accepts any short
	// printable id (see [Message.Validate]).
	ID string `json:"msg_id"`
	// ParentID is, on a reply, the ID of the message answered.
	ParentID string `json:"parent_msg_id,omitempty"`
	// Timestamp is the sending time in Unix milliseconds.
	Timestamp int64 `json:"timestamp"`
	// ResourceVersion is the object's resourceVersion on object messages.
	ResourceVersion string `json:"resourceversion,omitempty"`
	// Sync is true when the sender waits for a reply.
	Sync bool `json:"sync,omitempty"`
	// Type is the optional message type KubeEdge peers may set (the kind of context that
	// delivered the message inside their process). Not in our contract table, but real peers
	// send it, so it is accepted, kept and re-encoded rather than rejected as unknown.
	Type string `json:"type,omitempty"`
}

// Route says what a message is about. Source and Destination are module names and may be
// empty; Group, Operation and Resource are required.
type Route struct {
	Source      string    `json:"source,omitempty"`
	Destination string    `json:"destination,omitempty"`
	Group       Group     `json:"group"`
	Operation   Operation `json:"operation"`
	Resource    string    `json:"resource"`
}

// NewMessage returns a message with a fresh UUID v4 id and the current time. content must be
// one JSON value (nil means null); it is not copied.
func NewMessage(route Route, content json.RawMessage) *Message {
	return &Message{
		Header:  Header{ID: NewID(), Timestamp: time.Now().UnixMilli()},
		Route:   route,
		Content: content,
	}
}

// Reply returns a response to m: operation response, parent_msg_id = m's id, the same group
// and resource, and source and destination swapped (the answering module is now the sender).
func (m *Message) Reply(content json.RawMessage) *Message {
	return m.answer(OpResponse, content)
}

// Ack is the reply the edge sends once it has durably stored m: a response with content "OK".
func (m *Message) Ack() *Message {
	return m.answer(OpResponse, json.RawMessage(AckContent))
}

// Error returns the negative answer to m: operation error, content the JSON string reason.
func (m *Message) Error(reason string) *Message {
	return m.answer(OpError, appendQuoted(nil, reason))
}

func (m *Message) answer(op Operation, content json.RawMessage) *Message {
	r := NewMessage(Route{
		Source:      m.Route.Destination,
		Destination: m.Route.Source,
		Group:       m.Route.Group,
		Operation:   op,
		Resource:    m.Route.Resource,
	}, content)
	r.Header.ParentID = m.Header.ID
	return r
}

// NewKeepalive returns the keepalive the edge sends every 15 s by default.
func NewKeepalive() *Message {
	return NewMessage(Route{
		Source:    SourceWebsocket,
		Group:     GroupResource,
		Operation: OpKeepalive,
		Resource:  keepaliveRes,
	}, json.RawMessage(KeepaliveContent))
}

// IsKeepalive reports whether m is a keepalive. Only the operation decides: the session layer
// must not drop a peer whose keepalive differs in the other route fields.
func (m *Message) IsKeepalive() bool {
	return m.Route.Operation == OpKeepalive
}

// NewID returns a random UUID v4 in its canonical 36-character form.
func NewID() string {
	var u [16]byte
	// crypto/rand.Read never returns an error (Go ≥ 1.24 aborts the program instead).
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:])
}
