package eventbus

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The topics whose messages go to the cloud (spec §5).
const (
	UploadFilter       = "$hw/events/upload/#"
	UploadRecordsTopic = "SYS/dis/upload_records"
	// UploadResource and UploadOperation address the upstream message (docs/protocol.md,
	// "Devices"): operation "publish", resource "null/mqttupload".
	UploadResource  = "null/mqttupload"
	UploadOperation = "publish"
	// MaxUploadContentBytes bounds an encoded upload the decoder accepts: the largest
	// allowed payload base64-encoded, plus a topic and the JSON around them.
	MaxUploadContentBytes = (MaxMaxPayloadBytes+2)/3*4 + maxTopicBytes*6 + 64
)

// IsUploadTopic reports whether messages on topic go to the cloud.
func IsUploadTopic(topic string) bool {
	return topic == UploadRecordsTopic || topic == "$hw/events/upload" || strings.HasPrefix(topic, "$hw/events/upload/")
}

// uploadContent is the content of a `publish null/mqttupload` message. encoding/json
// writes a []byte as standard base64.
type uploadContent struct {
	Topic   string  `json:"topic"`
	Payload *[]byte `json:"payload"`
}

// UploadContent encodes an uploaded message as the content of the upstream message:
// {"topic": "<topic>", "payload": "<base64>"}.
func UploadContent(topic string, payload []byte) ([]byte, error) {
	if err := checkUploadTopic(topic); err != nil {
		return nil, err
	}
	if payload == nil {
		payload = []byte{}
	}
	b, err := json.Marshal(uploadContent{Topic: topic, Payload: &payload})
	if err != nil {
		return nil, fmt.Errorf("eventbus: encode upload of %q: %w", topic, err)
	}
	return b, nil
}

// DecodeUploadContent is UploadContent's inverse, for the cloud. It accepts only an object
// with a valid upload topic and a base64 payload, at most MaxUploadContentBytes long.
func DecodeUploadContent(data []byte) (topic string, payload []byte, err error) {
	if len(data) > MaxUploadContentBytes {
		return "", nil, fmt.Errorf("eventbus: upload content of %d bytes: the limit is %d", len(data), MaxUploadContentBytes)
	}
	var c uploadContent
	if err := json.Unmarshal(data, &c); err != nil {
		return "", nil, fmt.Errorf("eventbus: upload content: %w", err)
	}
	if err := checkUploadTopic(c.Topic); err != nil {
		return "", nil, err
	}
	if c.Payload == nil {
		return "", nil, fmt.Errorf("eventbus: upload content for %q: no payload", c.Topic)
	}
	if len(*c.Payload) > MaxMaxPayloadBytes {
		return "", nil, fmt.Errorf("eventbus: upload content for %q: payload of %d bytes: the limit is %d", c.Topic, len(*c.Payload), MaxMaxPayloadBytes)
	}
	return c.Topic, *c.Payload, nil
}

func checkUploadTopic(topic string) error {
	if err := ValidateTopic(topic); err != nil {
		return fmt.Errorf("eventbus: upload: %w", err)
	}
	if !IsUploadTopic(topic) {
		return fmt.Errorf("eventbus: upload: topic %q is not an upload topic ($hw/events/upload/... or %s)", topic, UploadRecordsTopic)
	}
	return nil
}
