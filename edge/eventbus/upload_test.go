package eventbus

import (
	"bytes"
	"strings"
	"testing"
)

func TestUploadContentRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		topic   string
		payload []byte
	}{
		{"$hw/events/upload/temp", []byte(`{"t":21.5}`)},
		{UploadRecordsTopic, []byte{0, 1, 2, 0xff}},
		{"$hw/events/upload", nil},
		{"$hw/events/upload/<&>", []byte("")},
	} {
		data, err := UploadContent(tc.topic, tc.payload)
		if err != nil {
			t.Fatalf("UploadContent(%q): %v", tc.topic, err)
		}
		topic, payload, err := DecodeUploadContent(data)
		if err != nil {
			t.Fatalf("decode %s: %v", data, err)
		}
		if topic != tc.topic || !bytes.Equal(payload, tc.payload) {
			t.Errorf("round trip of %q %x gave %q %x", tc.topic, tc.payload, topic, payload)
		}
	}
	data, _ := UploadContent("$hw/events/upload/a", []byte("hi"))
	if string(data) != `{"topic":"$hw/events/upload/a","payload":"aGk="}` {
		t.Errorf("encoded %s, want the documented form", data)
	}
}

func TestUploadContentErrors(t *testing.T) {
	for _, topic := range []string{"", "other/topic", "$hw/events/upload/+", "$hw/events/uploadx", "SYS/dis/upload_records/x"} {
		if _, err := UploadContent(topic, nil); err == nil {
			t.Errorf("UploadContent(%q) accepted", topic)
		}
	}
	for _, tc := range []struct{ data, want string }{
		{``, "upload content"},
		{`[]`, "upload content"},
		{`{"topic":"$hw/events/upload/a"}`, "no payload"},
		{`{"topic":"$hw/events/upload/a","payload":null}`, "no payload"},
		{`{"topic":"$hw/events/upload/a","payload":"!!"}`, "upload content"},
		{`{"topic":"a/b","payload":""}`, "not an upload topic"},
		{`{"topic":"$hw/events/upload/a","payload":""} x`, "upload content"},
		{`"` + strings.Repeat("a", MaxUploadContentBytes) + `"`, "limit"},
	} {
		if _, _, err := DecodeUploadContent([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeUploadContent(%.60s): %v, want an error containing %q", tc.data, err, tc.want)
		}
	}
}

// FuzzDecodeUploadContent: the cloud's decoder never panics, and what it accepts encodes
// back to content that decodes to the same upload.
func FuzzDecodeUploadContent(f *testing.F) {
	good, _ := UploadContent("$hw/events/upload/a", []byte("payload"))
	f.Add(good)
	f.Add([]byte(`{"topic":"SYS/dis/upload_records","payload":""}`))
	f.Add([]byte(`{"topic":"$hw/events/upload/\u0000","payload":"AA=="}`))
	f.Add([]byte(`{"TOPIC":"$hw/events/upload","Payload":"AA==","x":1}`))
	f.Add([]byte(`{"topic":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		topic, payload, err := DecodeUploadContent(data)
		if err != nil {
			return
		}
		if !IsUploadTopic(topic) || ValidateTopic(topic) != nil {
			t.Fatalf("accepted topic %q", topic)
		}
		again, err := UploadContent(topic, payload)
		if err != nil {
			t.Fatalf("accepted upload does not encode: %v", err)
		}
		t2, p2, err := DecodeUploadContent(again)
		if err != nil || t2 != topic || !bytes.Equal(p2, payload) {
			t.Fatalf("re-encoded upload decodes to %q %x, %v", t2, p2, err)
		}
	})
}
