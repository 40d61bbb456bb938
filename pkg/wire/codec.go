package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors; every error this package returns wraps one of them.
var (
	// ErrTooLarge: the message is over the size limit. A transport should drop the session:
	// the peer is broken or hostile, and resynchronising inside the stream is impossible.
	ErrTooLarge = errors.New("wire: message too large")
	// ErrInvalid: the message (or a resource string) is malformed or breaks the contract.
	ErrInvalid = errors.New("wire: invalid message")
	// ErrWrongNode: a well-formed cloud resource addressed to a node other than the session's.
	ErrWrongNode = errors.New("wire: resource addressed to another node")
)

// Defaults for [Limits].
const (
	// DefaultMaxMessageSize bounds one encoded message. Kubernetes caps an object at about
	// 1.5 MiB in etcd; 8 MiB leaves room for the envelope and for large device payloads while
	// keeping the memory a single frame can pin small.
	DefaultMaxMessageSize = 8 << 20
	// DefaultMaxDepth equals encoding/json's own nesting limit, so any content accepted here
	// can later be decoded by a receiver using encoding/json.
	DefaultMaxDepth = 10000
)

// Caps on envelope strings. KubeEdge ids are 36-character UUIDs and names are short module
// and operation words; the caps only stop a peer from hiding megabytes in a header.
const (
	MaxIDLength       = 128  // msg_id, parent_msg_id, resourceversion
	MaxNameLength     = 128  // source, destination, group, operation
	MaxResourceLength = 1024 // resource: the cloud form of a subdomain-named object fits easily
)

// Limits bounds what the codec accepts. The zero value means the defaults.
type Limits struct {
	// MaxMessageSize is the largest encoded message in bytes (≤ 0: DefaultMaxMessageSize).
	MaxMessageSize int64
	// MaxDepth is the deepest nesting of arrays and objects in content (≤ 0: DefaultMaxDepth).
	MaxDepth int
}

func (l Limits) orDefaults() Limits {
	if l.MaxMessageSize <= 0 {
		l.MaxMessageSize = DefaultMaxMessageSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

func tooLarge(size, limit int64) error {
	return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, limit)
}

func fieldErr(field, reason string) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, reason)
}

// Decode parses one message. It does not retain data: the caller may reuse the buffer.
//
// Decode is stricter than encoding/json, on purpose; every rule below is one a KubeEdge peer
// (a Go program using encoding/json on the same struct shape) already satisfies:
//   - the input is exactly one JSON object, optionally surrounded by whitespace;
//   - keys match exactly (encoding/json matches case-insensitively) and appear at most once:
//     encoding/json silently keeps the last duplicate, which would let a second "route" slip
//     past a check made on the first;
//   - unknown fields are rejected at every envelope level (not inside content);
//   - header, route and content are present; so are header.msg_id and header.timestamp;
//   - strings are strings, timestamp a non-negative integer, sync a boolean (never null);
//   - the values pass [Message.Validate].
//
// content may be any JSON value including null; it is kept as raw JSON, copied without
// insignificant whitespace.
func Decode(data []byte, limits Limits) (*Message, error) {
	limits = limits.orDefaults()
	if int64(len(data)) > limits.MaxMessageSize {
		return nil, tooLarge(int64(len(data)), limits.MaxMessageSize)
	}
	d := decoder{data: data, maxDepth: limits.MaxDepth}
	m := new(Message)
	if err := d.message(m); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeFrom reads one message from r, which must end where the message ends (a WebSocket
// frame reader, an io.LimitReader over a length-prefixed frame). It reads at most
// limits.MaxMessageSize+1 bytes, so an oversize message costs no more memory than the limit.
func DecodeFrom(r io.Reader, limits Limits) (*Message, error) {
	limits = limits.orDefaults()
	n := limits.MaxMessageSize
	if n < math.MaxInt64 {
		n++ // one byte more than allowed tells "at the limit" from "over it"
	}
	data, err := io.ReadAll(io.LimitReader(r, n))
	if err != nil {
		return nil, fmt.Errorf("wire: reading message: %w", err)
	}
	if int64(len(data)) > limits.MaxMessageSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limits.MaxMessageSize)
	}
	return Decode(data, limits)
}

// Encode returns the wire form of m under the default limits. Its output is compact JSON with
// the fields in KubeEdge's order; empty optional fields are omitted exactly as KubeEdge's own
// encoding omits them (parent_msg_id, resourceversion, sync, source, destination), and the
// fields a KubeEdge peer needs are always written (msg_id, timestamp, group, operation,
// resource, content).
func Encode(m *Message) ([]byte, error) {
	return AppendEncode(nil, m, Limits{})
}

// AppendEncode appends the wire form of m to dst, so a transport can reuse one buffer per
// session. It checks m with [Message.Validate] and checks that Content is one valid JSON
// value within limits; on error dst is returned unchanged. Whatever it writes, [Decode] with
// the same limits accepts and returns as a message equal to m (with Content compacted).
func AppendEncode(dst []byte, m *Message, limits Limits) ([]byte, error) {
	limits = limits.orDefaults()
	if err := m.Validate(); err != nil {
		return dst, err
	}
	content, spaced, err := checkContent(m.Content, limits.MaxDepth)
	if err != nil {
		return dst, err
	}
	if int64(len(content)) > limits.MaxMessageSize {
		return dst, tooLarge(int64(len(content)), limits.MaxMessageSize)
	}
	h, r := &m.Header, &m.Route
	start := len(dst)
	dst = slices.Grow(dst, 170+len(h.ID)+len(h.ParentID)+len(h.ResourceVersion)+len(h.Type)+
		len(r.Source)+len(r.Destination)+len(r.Group)+len(r.Operation)+len(r.Resource)+len(content))

	dst = append(dst, `{"header":{"msg_id":`...)
	dst = appendQuoted(dst, h.ID)
	if h.ParentID != "" {
		dst = append(dst, `,"parent_msg_id":`...)
		dst = appendQuoted(dst, h.ParentID)
	}
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, h.Timestamp, 10)
	if h.ResourceVersion != "" {
		dst = append(dst, `,"resourceversion":`...)
		dst = appendQuoted(dst, h.ResourceVersion)
	}
	if h.Sync {
		dst = append(dst, `,"sync":true`...)
	}
	if h.Type != "" {
		dst = append(dst, `,"type":`...)
		dst = appendQuoted(dst, h.Type)
	}
	dst = append(dst, `},"route":{`...)
	if r.Source != "" {
		dst = append(dst, `"source":`...)
		dst = appendQuoted(dst, r.Source)
		dst = append(dst, ',')
	}
	if r.Destination != "" {
		dst = append(dst, `"destination":`...)
		dst = appendQuoted(dst, r.Destination)
		dst = append(dst, ',')
	}
	dst = append(dst, `"group":`...)
	dst = appendQuoted(dst, string(r.Group))
	dst = append(dst, `,"operation":`...)
	dst = appendQuoted(dst, string(r.Operation))
	dst = append(dst, `,"resource":`...)
	dst = appendQuoted(dst, r.Resource)
	dst = append(dst, `},"content":`...)
	switch {
	case content == nil:
		dst = append(dst, "null"...)
	case spaced:
		dst = appendCompact(dst, content)
	default:
		dst = append(dst, content...)
	}
	dst = append(dst, '}')
	if size := int64(len(dst) - start); size > limits.MaxMessageSize {
		return dst[:start], tooLarge(size, limits.MaxMessageSize)
	}
	return dst, nil
}

// checkContent checks that c is exactly one JSON value (surrounding whitespace allowed) and
// returns it trimmed, and whether it contains whitespace to compact. nil and empty mean null.
func checkContent(c json.RawMessage, maxDepth int) (v []byte, spaced bool, err error) {
	if len(c) == 0 {
		return nil, false, nil
	}
	d := decoder{data: c, maxDepth: maxDepth, inContent: true}
	d.skipSpace()
	start := d.pos
	d.spaced = false
	if err := d.skipValue(0); err != nil {
		return nil, false, err
	}
	end, spaced := d.pos, d.spaced
	d.skipSpace()
	if d.pos != len(c) {
		return nil, false, d.errorf("trailing data after the value")
	}
	return c[start:end], spaced, nil
}

// Validate checks the envelope's values (not Content, which needs [Limits]; [AppendEncode]
// checks it):
//   - header.msg_id is required; msg_id, parent_msg_id and resourceversion are printable ASCII
//     without spaces, at most [MaxIDLength] bytes. Ids are not required to be UUIDs: KubeEdge
//     sends UUIDs, but an id is only ever compared for equality, so a stricter rule would buy no
//     safety and would break peers and tools that use another scheme;
//   - header.timestamp is not negative;
//   - route.group and route.operation are required, source and destination optional; all four
//     are printable ASCII without spaces, at most [MaxNameLength] bytes. Neither group nor
//     operation is a closed set: KubeEdge peers send values beyond the named constants;
//   - route.resource is required, at most [MaxResourceLength] bytes of printable UTF-8 without
//     whitespace. It is not parsed here: besides object resources (see [ParseResource]) peers
//     use forms such as "node" (keepalive) or twin and user-topic resources.
func (m *Message) Validate() error {
	h, r := &m.Header, &m.Route
	if err := checkToken("header.msg_id", h.ID, MaxIDLength, true); err != nil {
		return err
	}
	if err := checkToken("header.parent_msg_id", h.ParentID, MaxIDLength, false); err != nil {
		return err
	}
	if h.Timestamp < 0 {
		return fieldErr("header.timestamp", "must not be negative")
	}
	if err := checkToken("header.resourceversion", h.ResourceVersion, MaxIDLength, false); err != nil {
		return err
	}
	if err := checkToken("header.type", h.Type, MaxNameLength, false); err != nil {
		return err
	}
	if err := checkToken("route.source", r.Source, MaxNameLength, false); err != nil {
		return err
	}
	if err := checkToken("route.destination", r.Destination, MaxNameLength, false); err != nil {
		return err
	}
	if err := checkToken("route.group", string(r.Group), MaxNameLength, true); err != nil {
		return err
	}
	if err := checkToken("route.operation", string(r.Operation), MaxNameLength, true); err != nil {
		return err
	}
	return checkResource(r.Resource)
}

func checkToken(field, s string, maxLen int, required bool) error {
	switch {
	case s == "":
		if required {
			return fieldErr(field, "missing or empty")
		}
		return nil
	case len(s) > maxLen:
		return fieldErr(field, fmt.Sprintf("%d bytes, limit %d", len(s), maxLen))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fieldErr(field, fmt.Sprintf("byte %d (%q) is not printable ASCII", i, c))
		}
	}
	return nil
}

func checkResource(s string) error {
	const field = "route.resource"
	switch {
	case s == "":
		return fieldErr(field, "missing or empty")
	case len(s) > MaxResourceLength:
		return fieldErr(field, fmt.Sprintf("%d bytes, limit %d", len(s), MaxResourceLength))
	}
	for i := 0; i < len(s); {
		if c := s[i]; c > ' ' && c <= '~' {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || !unicode.IsGraphic(r) || unicode.IsSpace(r) {
			return fieldErr(field, fmt.Sprintf("byte %d: not printable UTF-8 without whitespace", i))
		}
		i += n
	}
	return nil
}

// Bits of the "seen" sets used for duplicate and presence checks.
const (
	seenHeader = 1 << iota
	seenRoute
	seenContent
)

const (
	seenID = 1 << iota
	seenParentID
	seenTimestamp
	seenResourceVersion
	seenSync
	seenType
)

const (
	seenSource = 1 << iota
	seenDestination
	seenGroup
	seenOperation
	seenResource
)

// mark records field as seen and fails if it already was.
func mark(seen *uint, bit uint, field string) error {
	if *seen&bit != 0 {
		return fieldErr(field, "duplicate field")
	}
	*seen |= bit
	return nil
}

func unknownField(parent string, key []byte) error {
	k := string(key)
	if len(k) > 64 {
		k = k[:64] + "…"
	}
	if parent == "" {
		return fmt.Errorf("%w: unknown field %q", ErrInvalid, k)
	}
	return fmt.Errorf("%w: %s: unknown field %q", ErrInvalid, parent, k)
}

func (d *decoder) message(m *Message) error {
	d.skipSpace()
	if d.pos == len(d.data) {
		return fmt.Errorf("%w: empty input", ErrInvalid)
	}
	switch d.data[d.pos] {
	case '{':
		d.pos++
	case 'n':
		if d.literal("null") == nil {
			return fmt.Errorf("%w: message is JSON null, want an object", ErrInvalid)
		}
		return d.unexpected("a JSON object")
	default:
		return d.unexpected("a JSON object")
	}
	var seen uint
	for first := true; ; {
		key, ok, err := d.nextMember(&first, true)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "header":
			if err = mark(&seen, seenHeader, "header"); err == nil {
				err = d.header(&m.Header)
			}
		case "route":
			if err = mark(&seen, seenRoute, "route"); err == nil {
				err = d.route(&m.Route)
			}
		case "content":
			if err = mark(&seen, seenContent, "content"); err == nil {
				m.Content, err = d.content()
			}
		default:
			err = unknownField("", key)
		}
		if err != nil {
			return err
		}
	}
	switch {
	case seen&seenHeader == 0:
		return fieldErr("header", "missing")
	case seen&seenRoute == 0:
		return fieldErr("route", "missing")
	case seen&seenContent == 0:
		// KubeEdge writes content unconditionally (null when empty); a message without it
		// was not produced by a KubeEdge peer.
		return fieldErr("content", "missing")
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return d.errorf("trailing data after the message")
	}
	return nil
}

func (d *decoder) header(h *Header) error {
	if d.peek() != '{' {
		return fieldErr("header", "must be an object")
	}
	d.pos++
	var seen uint
	for first := true; ; {
		key, ok, err := d.nextMember(&first, true)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch string(key) {
		case "msg_id":
			if err = mark(&seen, seenID, "header.msg_id"); err == nil {
				h.ID, err = d.stringValue("header.msg_id")
			}
		case "parent_msg_id":
			if err = mark(&seen, seenParentID, "header.parent_msg_id"); err == nil {
				h.ParentID, err = d.stringValue("header.parent_msg_id")
			}
		case "timestamp":
			if err = mark(&seen, seenTimestamp, "header.timestamp"); err == nil {
				h.Timestamp, err = d.timestamp()
			}
		case "resourceversion":
			if err = mark(&seen, seenResourceVersion, "header.resourceversion"); err == nil {
				h.ResourceVersion, err = d.stringValue("header.resourceversion")
			}
		case "sync":
			if err = mark(&seen, seenSync, "header.sync"); err == nil {
				h.Sync, err = d.boolValue("header.sync")
			}
		case "type":
			if err = mark(&seen, seenType, "header.type"); err == nil {
				h.Type, err = d.stringValue("header.type")
			}
		default:
			err = unknownField("header", key)
		}
		if err != nil {
			return err
		}
	}
	// msg_id's absence is reported by Validate; timestamp's cannot be, since 0 is valid.
	if seen&seenTimestamp == 0 {
		return fieldErr("header.timestamp", "missing")
	}
	return nil
}

func (d *decoder) route(r *Route) error {
	if d.peek() != '{' {
		return fieldErr("route", "must be an object")
	}
	d.pos++
	var seen uint
	for first := true; ; {
		key, ok, err := d.nextMember(&first, true)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		var s string
		switch string(key) {
		case "source":
			if err = mark(&seen, seenSource, "route.source"); err == nil {
				r.Source, err = d.stringValue("route.source")
			}
		case "destination":
			if err = mark(&seen, seenDestination, "route.destination"); err == nil {
				r.Destination, err = d.stringValue("route.destination")
			}
		case "group":
			if err = mark(&seen, seenGroup, "route.group"); err == nil {
				s, err = d.stringValue("route.group")
				r.Group = Group(s)
			}
		case "operation":
			if err = mark(&seen, seenOperation, "route.operation"); err == nil {
				s, err = d.stringValue("route.operation")
				r.Operation = Operation(s)
			}
		case "resource":
			if err = mark(&seen, seenResource, "route.resource"); err == nil {
				r.Resource, err = d.stringValue("route.resource")
			}
		default:
			err = unknownField("route", key)
		}
		if err != nil {
			return err
		}
	}
}

// stringValue reads a string (not null) for field.
func (d *decoder) stringValue(field string) (string, error) {
	if d.peek() != '"' {
		return "", fieldErr(field, "must be a string")
	}
	raw, escaped, err := d.scanString()
	if err != nil {
		return "", err
	}
	if escaped {
		b, err := d.unescape(raw)
		return string(b), err
	}
	return intern(raw), nil
}

// intern returns the constant for the words that occur in nearly every message, saving an
// allocation each (the switch on string(b) does not allocate).
func intern(b []byte) string {
	switch string(b) {
	case "insert":
		return "insert"
	case "update":
		return "update"
	case "patch":
		return "patch"
	case "delete":
		return "delete"
	case "query":
		return "query"
	case "response":
		return "response"
	case "error":
		return "error"
	case "upload":
		return "upload"
	case "keepalive":
		return "keepalive"
	case "resource":
		return "resource"
	case "twin":
		return "twin"
	case "user":
		return "user"
	case "meta":
		return "meta"
	case "func":
		return "func"
	case "websocket":
		return "websocket"
	case "node":
		return "node"
	}
	return string(b)
}

// timestamp reads header.timestamp: a JSON integer in [0, MaxInt64]. Fractions and exponents
// are refused; KubeEdge writes an int64.
func (d *decoder) timestamp() (int64, error) {
	const field = "header.timestamp"
	switch c := d.peek(); {
	case c == '-':
		return 0, fieldErr(field, "must not be negative")
	case c < '0' || c > '9':
		return 0, fieldErr(field, "must be an integer")
	case c == '0':
		d.pos++
	default:
		var n int64
		for ; d.pos < len(d.data); d.pos++ {
			c := d.data[d.pos]
			if c < '0' || c > '9' {
				break
			}
			if n > (math.MaxInt64-int64(c-'0'))/10 {
				return 0, fieldErr(field, "out of range")
			}
			n = n*10 + int64(c-'0')
		}
		if c := d.peek(); c == '.' || c == 'e' || c == 'E' {
			return 0, fieldErr(field, "must be an integer")
		}
		return n, nil
	}
	if c := d.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, fieldErr(field, "must be an integer")
	}
	return 0, nil
}

func (d *decoder) boolValue(field string) (bool, error) {
	switch d.peek() {
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	}
	return false, fieldErr(field, "must be true or false")
}

// content reads the content value and returns a compact copy of it.
func (d *decoder) content() (json.RawMessage, error) {
	start := d.pos
	d.spaced, d.inContent = false, true
	err := d.skipValue(0)
	d.inContent = false
	if err != nil {
		return nil, err
	}
	v := d.data[start:d.pos]
	if d.spaced {
		return appendCompact(make([]byte, 0, len(v)), v), nil
	}
	out := make([]byte, len(v))
	copy(out, v)
	return out, nil
}
