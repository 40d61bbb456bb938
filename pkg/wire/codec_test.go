package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// equal compares messages field by field (Message holds a slice, so == does not work).
func equal(a, b *Message) bool {
	return a.Header == b.Header && a.Route == b.Route && bytes.Equal(a.Content, b.Content)
}

func compactJSON(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("compact: %v", err)
	}
	return buf.Bytes()
}

func goldenFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden messages in testdata: %v", err)
	}
	return files
}

// Messages as KubeEdge peers send them decode to what they say, and re-encode losslessly: our
// encoding is the compact form of theirs, with the same field order and the same omissions.
func TestGoldenMessagesRoundTrip(t *testing.T) {
	for _, file := range goldenFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			golden, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Decode(golden, Limits{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			enc, err := Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if want := compactJSON(t, golden); !bytes.Equal(enc, want) {
				t.Errorf("re-encoded message differs from the golden one\n got: %s\nwant: %s", enc, want)
			}
			again, err := Decode(enc, Limits{})
			if err != nil || !equal(m, again) {
				t.Errorf("Decode(Encode(m)) = %+v, %v; want %+v", again, err, m)
			}

			// A Go peer using encoding/json on the same shape reads the same message...
			var ref Message
			if err := json.Unmarshal(golden, &ref); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			ref.Content = compactJSON(t, ref.Content)
			if !equal(m, &ref) {
				t.Errorf("encoding/json reads %+v, we read %+v", ref, *m)
			}
			// ...and writes the same bytes we do (none of the goldens has HTML characters,
			// which encoding/json would escape).
			if std, err := json.Marshal(m); err != nil || !bytes.Equal(std, enc) {
				t.Errorf("json.Marshal = %s, %v; Encode = %s", std, err, enc)
			}
		})
	}
}

// The golden messages mean what the spec says they mean.
func TestGoldenMessagesContent(t *testing.T) {
	read := func(name string) *Message {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(b, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return m
	}

	pod := read("pod-insert.json")
	if got, want := pod.Route, (Route{Source: "edgecontroller", Destination: "metamanager",
		Group: GroupResource, Operation: OpInsert, Resource: "default/pod/web-1"}); got != want {
		t.Errorf("pod insert route = %+v, want %+v", got, want)
	}
	if pod.Header.ResourceVersion != "184467" || pod.Header.Timestamp != 1767225600123 || pod.Header.Sync {
		t.Errorf("pod insert header = %+v", pod.Header)
	}
	var obj struct {
		Spec struct{ NodeName string }
	}
	if err := json.Unmarshal(pod.Content, &obj); err != nil || obj.Spec.NodeName != "edge-1" {
		t.Errorf("pod content does not decode to a pod for edge-1: %v %+v", err, obj)
	}

	ack := read("ack.json")
	if ack.Header.ParentID != pod.Header.ID || ack.Route.Operation != OpResponse || string(ack.Content) != AckContent {
		t.Errorf("ack does not acknowledge the pod insert: %+v", ack)
	}

	ka := read("keepalive.json")
	if !ka.IsKeepalive() || string(ka.Content) != KeepaliveContent {
		t.Errorf("keepalive = %+v", ka)
	}

	q := read("query-configmap.json")
	if !q.Header.Sync || q.Route.Operation != OpQuery || string(q.Content) != "null" {
		t.Errorf("query = %+v, content %s", q, q.Content)
	}
	resp := read("query-configmap-response.json")
	if resp.Header.ParentID != q.Header.ID || resp.Route.Operation != OpResponse {
		t.Errorf("response does not answer the query: %+v", resp)
	}

	e := read("error.json")
	var reason string
	if err := json.Unmarshal(e.Content, &reason); err != nil || e.Route.Operation != OpError ||
		reason != `secrets "missing" not found` {
		t.Errorf("error message = %+v, reason %q (%v)", e, reason, err)
	}

	node := read("node-insert.json")
	k, err := ParseResource(node.Route.Resource)
	if err != nil || k != (Key{Type: TypeNode, Name: "edge-1"}) {
		t.Errorf("node registration resource = %+v, %v", k, err)
	}
}

const (
	baseHeader = `"msg_id":"6f1c2a9e-3b7d-4c1e-9a2f-5d8e7b6c4a31","timestamp":1767225600123`
	baseRoute  = `"source":"edged","group":"resource","operation":"update","resource":"default/podstatus/web-1"`
)

// msg builds a message text from its three parts (each without braces, content as JSON).
func msg(header, route, content string) string {
	return `{"header":{` + header + `},"route":{` + route + `},"content":` + content + `}`
}

func TestDecodeRejects(t *testing.T) {
	valid := msg(baseHeader, baseRoute, `{}`)
	tests := []struct {
		name  string
		input string
		want  string // substring of the error
	}{
		{"empty input", ``, "empty input"},
		{"only whitespace", " \n\t", "empty input"},
		{"NUL byte", "\x00", "unexpected '\\x00'"},
		{"not JSON", `hello`, "want a JSON object"},
		{"JSON null", `null`, "JSON null"},
		{"array", `[` + valid + `]`, "want a JSON object"},
		{"string", `"msg"`, "want a JSON object"},
		{"byte order mark", "\ufeff" + valid, "want a JSON object"},
		{"truncated", valid[:len(valid)-1], "end of input"},
		{"trailing garbage", valid + `x`, "trailing data"},
		{"two messages", valid + valid, "trailing data"},
		{"trailing comma", `{"header":{` + baseHeader + `},"route":{` + baseRoute + `},"content":{},}`, "object key"},

		{"unknown top-level field", `{"header":{` + baseHeader + `},"route":{` + baseRoute + `},"content":1,"extra":1}`, `unknown field "extra"`},
		{"unknown header field", msg(baseHeader+`,"priority":"x"`, baseRoute, `1`), `header: unknown field "priority"`},
		{"unknown route field", msg(baseHeader, baseRoute+`,"via":"x"`, `1`), `route: unknown field "via"`},
		{"key in another case", `{"header":{` + baseHeader + `},"Route":{` + baseRoute + `},"content":1}`, `unknown field "Route"`},

		// encoding/json would keep the last route and let it pass a check made on the first.
		{"duplicate route", `{"header":{` + baseHeader + `},"route":{` + baseRoute + `},"content":1,"route":{"group":"resource","operation":"delete","resource":"kube-system/secret/admin"}}`, "route: duplicate field"},
		{"duplicate route, escaped key", `{"header":{` + baseHeader + `},"route":{` + baseRoute + `},"\u0072oute":{` + baseRoute + `},"content":1}`, "route: duplicate field"},
		{"duplicate header", `{"header":{` + baseHeader + `},"header":{` + baseHeader + `},"route":{` + baseRoute + `},"content":1}`, "header: duplicate field"},
		{"duplicate content", `{"header":{` + baseHeader + `},"route":{` + baseRoute + `},"content":1,"content":2}`, "content: duplicate field"},
		{"duplicate msg_id", msg(baseHeader+`,"msg_id":"x"`, baseRoute, `1`), "header.msg_id: duplicate field"},
		{"duplicate resource", msg(baseHeader, baseRoute+`,"resource":"default/secret/s"`, `1`), "route.resource: duplicate field"},

		{"missing header", `{"route":{` + baseRoute + `},"content":1}`, "header: missing"},
		{"missing route", `{"header":{` + baseHeader + `},"content":1}`, "route: missing"},
		{"missing content", `{"header":{` + baseHeader + `},"route":{` + baseRoute + `}}`, "content: missing"},
		{"header not an object", `{"header":[],"route":{` + baseRoute + `},"content":1}`, "header: must be an object"},
		{"route null", `{"header":{` + baseHeader + `},"route":null,"content":1}`, "route: must be an object"},

		{"missing msg_id", msg(`"timestamp":1`, baseRoute, `1`), "header.msg_id: missing"},
		{"empty msg_id", msg(`"msg_id":"","timestamp":1`, baseRoute, `1`), "header.msg_id: missing"},
		{"numeric msg_id", msg(`"msg_id":42,"timestamp":1`, baseRoute, `1`), "header.msg_id: must be a string"},
		{"null msg_id", msg(`"msg_id":null,"timestamp":1`, baseRoute, `1`), "header.msg_id: must be a string"},
		{"msg_id with space", msg(`"msg_id":"a b","timestamp":1`, baseRoute, `1`), "header.msg_id: byte 1"},
		{"msg_id too long", msg(`"msg_id":"`+strings.Repeat("a", MaxIDLength+1)+`","timestamp":1`, baseRoute, `1`), "header.msg_id: 129 bytes"},
		{"msg_id unpaired surrogate", msg(`"msg_id":"\ud800","timestamp":1`, baseRoute, `1`), "unpaired surrogate"},
		{"msg_id invalid UTF-8", msg("\"msg_id\":\"\xff\",\"timestamp\":1", baseRoute, `1`), "invalid UTF-8"},
		{"msg_id control character", msg("\"msg_id\":\"a\x01\",\"timestamp\":1", baseRoute, `1`), "control character"},
		{"parent_msg_id null", msg(baseHeader+`,"parent_msg_id":null`, baseRoute, `1`), "header.parent_msg_id: must be a string"},

		{"missing timestamp", msg(`"msg_id":"a"`, baseRoute, `1`), "header.timestamp: missing"},
		{"negative timestamp", msg(`"msg_id":"a","timestamp":-1`, baseRoute, `1`), "header.timestamp: must not be negative"},
		{"fractional timestamp", msg(`"msg_id":"a","timestamp":1.5`, baseRoute, `1`), "header.timestamp: must be an integer"},
		{"exponent timestamp", msg(`"msg_id":"a","timestamp":1e12`, baseRoute, `1`), "header.timestamp: must be an integer"},
		{"string timestamp", msg(`"msg_id":"a","timestamp":"1"`, baseRoute, `1`), "header.timestamp: must be an integer"},
		{"null timestamp", msg(`"msg_id":"a","timestamp":null`, baseRoute, `1`), "header.timestamp: must be an integer"},
		{"timestamp overflow", msg(`"msg_id":"a","timestamp":9223372036854775808`, baseRoute, `1`), "header.timestamp: out of range"},
		{"timestamp leading zero", msg(`"msg_id":"a","timestamp":01`, baseRoute, `1`), "want ',' or '}'"},
		{"sync as string", msg(baseHeader+`,"sync":"true"`, baseRoute, `1`), "header.sync: must be true or false"},
		{"sync null", msg(baseHeader+`,"sync":null`, baseRoute, `1`), "header.sync: must be true or false"},
		{"sync misspelt", msg(baseHeader+`,"sync":tru`, baseRoute, `1`), "want true"},

		{"missing operation", msg(baseHeader, `"group":"resource","resource":"default/pod/a"`, `1`), "route.operation: missing"},
		{"empty operation", msg(baseHeader, `"group":"resource","operation":"","resource":"default/pod/a"`, `1`), "route.operation: missing"},
		{"operation with newline", msg(baseHeader, `"group":"resource","operation":"up\ndate","resource":"default/pod/a"`, `1`), "route.operation: byte 2"},
		{"missing group", msg(baseHeader, `"operation":"update","resource":"default/pod/a"`, `1`), "route.group: missing"},
		{"group too long", msg(baseHeader, `"group":"`+strings.Repeat("g", MaxNameLength+1)+`","operation":"update","resource":"default/pod/a"`, `1`), "route.group: 129 bytes"},
		{"missing resource", msg(baseHeader, `"group":"resource","operation":"update"`, `1`), "route.resource: missing"},
		{"resource with space", msg(baseHeader, `"group":"resource","operation":"update","resource":"default/pod/a b"`, `1`), "route.resource: byte 13"},
		{"resource with bidi override", msg(baseHeader, `"group":"resource","operation":"update","resource":"default/pod/a\u202e"`, `1`), "route.resource: byte 13"},
		{"resource too long", msg(baseHeader, `"group":"resource","operation":"update","resource":"`+strings.Repeat("r", MaxResourceLength+1)+`"`, `1`), "route.resource: 1025 bytes"},
		{"source as number", msg(baseHeader, `"source":1,"group":"resource","operation":"update","resource":"default/pod/a"`, `1`), "route.source: must be a string"},

		{"content invalid", msg(baseHeader, baseRoute, `{"a":}`), "content: offset"},
		{"content bare word", msg(baseHeader, baseRoute, `ok`), "content: offset"},
		{"content leading zero", msg(baseHeader, baseRoute, `[01]`), "content: offset"},
		{"content trailing comma", msg(baseHeader, baseRoute, `[1,]`), "content: offset"},
		{"content lone minus", msg(baseHeader, baseRoute, `-`), "content: offset"},
		{"content missing exponent digits", msg(baseHeader, baseRoute, `1e+`), "content: offset"},
		{"content control character", msg(baseHeader, baseRoute, "\"a\tb\""), "content: offset"},
		{"content invalid UTF-8", msg(baseHeader, baseRoute, "\"\xc3\x28\""), "invalid UTF-8"},
		{"content UTF-8 surrogate", msg(baseHeader, baseRoute, "\"\xed\xa0\x80\""), "invalid UTF-8"},
		{"content bad escape", msg(baseHeader, baseRoute, `"\x41"`), "invalid escape"},
		{"content short unicode escape", msg(baseHeader, baseRoute, `"\u12"`), "invalid \\u escape"},
		{"content unterminated string", `{"header":{` + baseHeader + `},"route":{` + baseRoute + `},"content":"abc`, "unterminated string"},
		{"content too deep", msg(baseHeader, baseRoute, strings.Repeat("[", DefaultMaxDepth+1)+strings.Repeat("]", DefaultMaxDepth+1)), "nested deeper than 10000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.input), Limits{})
			if err == nil {
				t.Fatalf("Decode accepted %q as %+v", tt.input, m)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestDecodeRejectsOversize(t *testing.T) {
	m := msg(baseHeader, baseRoute, `"`+strings.Repeat("x", 1000)+`"`)
	if _, err := Decode([]byte(m), Limits{MaxMessageSize: int64(len(m))}); err != nil {
		t.Fatalf("a message exactly at the limit must pass: %v", err)
	}
	_, err := Decode([]byte(m), Limits{MaxMessageSize: int64(len(m) - 1)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte over the limit: err = %v, want ErrTooLarge", err)
	}
	if errors.Is(err, ErrInvalid) {
		t.Errorf("ErrTooLarge must be distinguishable from ErrInvalid: %v", err)
	}
	deep := msg(baseHeader, baseRoute, `[[[1]]]`)
	if _, err := Decode([]byte(deep), Limits{MaxDepth: 2}); err == nil || !strings.Contains(err.Error(), "nested deeper than 2") {
		t.Errorf("MaxDepth 2 with depth 3: err = %v", err)
	}
	if _, err := Decode([]byte(deep), Limits{MaxDepth: 3}); err != nil {
		t.Errorf("MaxDepth 3 with depth 3: %v", err)
	}
}

// Things a strict decoder might be tempted to refuse but real peers do send.
func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name  string
		input string
		check func(*Message) bool
	}{
		{"fields in any order", `{"content":1,"route":{"resource":"default/pod/a","operation":"update","group":"resource"},"header":{"timestamp":5,"msg_id":"a"}}`,
			func(m *Message) bool {
				return m.Header.ID == "a" && m.Header.Timestamp == 5 && m.Route.Resource == "default/pod/a"
			}},
		{"whitespace everywhere", " \r\n{ \"header\" : { " + baseHeader + " } ,\t\"route\":{" + baseRoute + "} , \"content\" : [ 1 , { \"a\" : \"b c\" } ] }\n",
			func(m *Message) bool { return string(m.Content) == `[1,{"a":"b c"}]` }},
		{"ids that are not UUIDs", msg(`"msg_id":"42","parent_msg_id":"req-7","timestamp":0`, baseRoute, `1`),
			func(m *Message) bool { return m.Header.ID == "42" && m.Header.ParentID == "req-7" }},
		{"explicit empty optional fields", msg(baseHeader+`,"parent_msg_id":"","resourceversion":"","sync":false`, `"source":"","destination":"",`+baseRoute[len(`"source":"edged",`):], `1`),
			func(m *Message) bool { return m.Header.ParentID == "" && !m.Header.Sync && m.Route.Source == "" }},
		{"operation and group outside the named sets", msg(baseHeader, `"source":"eventbus","group":"bus","operation":"publish","resource":"$hw/events/device/+/twin/update"`, `{}`),
			func(m *Message) bool { return m.Route.Operation == "publish" && m.Route.Group == "bus" }},
		{"resource that is not an object key", msg(baseHeader, `"group":"twin","operation":"get","resource":"membership/detail"`, `{}`),
			func(m *Message) bool { return m.Route.Resource == "membership/detail" }},
		{"unicode resource", msg(baseHeader, `"group":"user","operation":"publish","resource":"topics/température"`, `{}`),
			func(m *Message) bool { return m.Route.Resource == "topics/température" }},
		{"escaped envelope strings and keys", msg(`"msg\u005fid":"\u0061\/b","timestamp":1`, `"group":"resource","operation":"update","resource":"default/pod/\ud83d\ude00"`, `1`),
			func(m *Message) bool { return m.Header.ID == "a/b" && m.Route.Resource == "default/pod/😀" }},
		{"null content", msg(baseHeader, baseRoute, `null`), func(m *Message) bool { return string(m.Content) == "null" }},
		{"string content", msg(baseHeader, baseRoute, `"OK"`), func(m *Message) bool { return string(m.Content) == `"OK"` }},
		{"number content", msg(baseHeader, baseRoute, `-0.5e+3`), func(m *Message) bool { return string(m.Content) == `-0.5e+3` }},
		{"boolean content", msg(baseHeader, baseRoute, `false`), func(m *Message) bool { return string(m.Content) == `false` }},
		// Content is opaque: its escapes are kept verbatim, including a lone surrogate,
		// which encoding/json accepts too (as U+FFFD).
		{"content escapes kept verbatim", msg(baseHeader, baseRoute, `{"k\u0065y":"\ud800 \" \\"}`),
			func(m *Message) bool { return string(m.Content) == `{"k\u0065y":"\ud800 \" \\"}` }},
		// Duplicate keys inside content are the receiver's business (it decodes the object
		// strictly); the envelope cannot be changed by them.
		{"duplicate keys inside content", msg(baseHeader, baseRoute, `{"a":1,"a":2}`),
			func(m *Message) bool { return string(m.Content) == `{"a":1,"a":2}` }},
		{"maximal timestamp", msg(`"msg_id":"a","timestamp":9223372036854775807`, baseRoute, `1`),
			func(m *Message) bool { return m.Header.Timestamp == 9223372036854775807 }},
		{"nesting at the depth limit", msg(baseHeader, baseRoute, strings.Repeat("[", DefaultMaxDepth)+strings.Repeat("]", DefaultMaxDepth)),
			func(m *Message) bool { return len(m.Content) == 2*DefaultMaxDepth }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.input), Limits{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !tt.check(m) {
				t.Errorf("decoded %+v (content %s)", *m, m.Content)
			}
			enc, err := Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if again, err := Decode(enc, Limits{}); err != nil || !equal(m, again) {
				t.Errorf("round trip: %v, %+v", err, again)
			}
		})
	}
}

// Decode must not keep a reference to the caller's buffer: transports reuse read buffers.
func TestDecodeDoesNotRetainInput(t *testing.T) {
	in := []byte(msg(baseHeader, baseRoute, `{"a":"b"}`))
	m, err := Decode(in, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'X'
	}
	if m.Header.ID != "6f1c2a9e-3b7d-4c1e-9a2f-5d8e7b6c4a31" || m.Route.Resource != "default/podstatus/web-1" || string(m.Content) != `{"a":"b"}` {
		t.Errorf("decoded message changed with its input buffer: %+v %s", *m, m.Content)
	}
}

// countingReader is an endless reader that counts what was taken from it.
type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n += int64(len(p))
	return len(p), nil
}

func TestDecodeFrom(t *testing.T) {
	valid := msg(baseHeader, baseRoute, `"ping"`)
	m, err := DecodeFrom(strings.NewReader(valid), Limits{})
	if err != nil || string(m.Content) != `"ping"` {
		t.Fatalf("DecodeFrom = %+v, %v", m, err)
	}

	// An endless stream is cut at limit+1 bytes; memory use is bounded by the limit.
	r := &countingReader{}
	_, err = DecodeFrom(r, Limits{MaxMessageSize: 4096})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless input: err = %v, want ErrTooLarge", err)
	}
	if r.n > 4096+512 { // io.ReadAll asks in chunks; the LimitReader caps what it gets
		t.Errorf("read %d bytes from an endless stream with a 4096-byte limit", r.n)
	}

	_, err = DecodeFrom(io.MultiReader(strings.NewReader(valid[:10]), iotestErrReader{}), Limits{})
	if err == nil || !strings.Contains(err.Error(), "reading message") || !errors.Is(err, errBoom) {
		t.Errorf("reader error: got %v", err)
	}
}

var errBoom = errors.New("boom")

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errBoom }

func TestEncodeForm(t *testing.T) {
	m := &Message{
		Header:  Header{ID: "a", Timestamp: 7},
		Route:   Route{Group: GroupResource, Operation: OpKeepalive, Resource: "node"},
		Content: nil,
	}
	enc, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	// Required fields are always written, empty optional ones never; nil content is null.
	want := `{"header":{"msg_id":"a","timestamp":7},"route":{"group":"resource","operation":"keepalive","resource":"node"},"content":null}`
	if string(enc) != want {
		t.Errorf("Encode =\n%s\nwant\n%s", enc, want)
	}

	m = &Message{
		Header: Header{ID: "b", ParentID: "a", Timestamp: 8, ResourceVersion: "12", Sync: true},
		Route: Route{Source: "edged", Destination: "edgecontroller", Group: GroupResource,
			Operation: OpUpdate, Resource: `odd/"quoted"\path`},
		Content: json.RawMessage(" {\n  \"a\" : [ 1, \"x y\" ]\n} "),
	}
	enc, err = Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	want = `{"header":{"msg_id":"b","parent_msg_id":"a","timestamp":8,"resourceversion":"12","sync":true},` +
		`"route":{"source":"edged","destination":"edgecontroller","group":"resource","operation":"update","resource":"odd/\"quoted\"\\path"},` +
		`"content":{"a":[1,"x y"]}}`
	if string(enc) != want {
		t.Errorf("Encode =\n%s\nwant\n%s", enc, want)
	}
	back, err := Decode(enc, Limits{})
	if err != nil || back.Route.Resource != m.Route.Resource || string(back.Content) != `{"a":[1,"x y"]}` {
		t.Errorf("Decode(Encode) = %+v, %v", back, err)
	}
}

func TestEncodeRejects(t *testing.T) {
	ok := func() *Message {
		return &Message{Header: Header{ID: "a", Timestamp: 1},
			Route: Route{Group: GroupResource, Operation: OpUpdate, Resource: "default/pod/a"}, Content: json.RawMessage(`{}`)}
	}
	tests := []struct {
		name   string
		mutate func(*Message)
		limits Limits
		target error
	}{
		{"no id", func(m *Message) { m.Header.ID = "" }, Limits{}, ErrInvalid},
		{"negative timestamp", func(m *Message) { m.Header.Timestamp = -1 }, Limits{}, ErrInvalid},
		{"no operation", func(m *Message) { m.Route.Operation = "" }, Limits{}, ErrInvalid},
		{"control character in resource", func(m *Message) { m.Route.Resource = "a\x00b" }, Limits{}, ErrInvalid},
		{"invalid UTF-8 in resource", func(m *Message) { m.Route.Resource = "a\xffb" }, Limits{}, ErrInvalid},
		{"content not JSON", func(m *Message) { m.Content = json.RawMessage(`{`) }, Limits{}, ErrInvalid},
		{"content two values", func(m *Message) { m.Content = json.RawMessage(`1 2`) }, Limits{}, ErrInvalid},
		{"content too deep", func(m *Message) { m.Content = json.RawMessage(`[[[]]]`) }, Limits{MaxDepth: 2}, ErrInvalid},
		{"content too large", func(m *Message) { m.Content = json.RawMessage(`"` + strings.Repeat("x", 200) + `"`) }, Limits{MaxMessageSize: 200}, ErrTooLarge},
		{"envelope pushes it over", func(m *Message) { m.Content = json.RawMessage(`"` + strings.Repeat("x", 150) + `"`) }, Limits{MaxMessageSize: 200}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ok()
			tt.mutate(m)
			prefix := []byte("kept")
			out, err := AppendEncode(prefix, m, tt.limits)
			if !errors.Is(err, tt.target) {
				t.Fatalf("err = %v, want %v", err, tt.target)
			}
			if string(out) != "kept" {
				t.Errorf("dst changed on error: %q", out)
			}
		})
	}
}

func TestAppendEncodeAppends(t *testing.T) {
	m := NewKeepalive()
	one, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 512)
	buf, err = AppendEncode(buf, m, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	buf, err = AppendEncode(buf, m, Limits{})
	if err != nil || string(buf) != string(one)+string(one) {
		t.Errorf("AppendEncode twice = %s, %v", buf, err)
	}
}

// KubeEdge peers may set header.type (their in-process delivery context); it is not in our
// contract table but must not make a real peer's message fail.
func TestHeaderTypeFromKubeEdgePeersIsKept(t *testing.T) {
	data, err := os.ReadFile("testdata/podstatus-update-typed-header.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(data, Limits{})
	if err != nil {
		t.Fatalf("a header with type was rejected: %v", err)
	}
	if m.Header.Type != "channel" {
		t.Fatalf("header.type = %q, want channel", m.Header.Type)
	}
	out, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Decode(out, Limits{})
	if err != nil || again.Header.Type != "channel" {
		t.Fatalf("re-encoded header lost its type: %v, %s", err, out)
	}
	bad := bytes.Replace(data, []byte(`"type": "channel"`), []byte(`"type": "chan\u0000nel"`), 1)
	if _, err := Decode(bad, Limits{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a control character in header.type: %v, want ErrInvalid", err)
	}
}
