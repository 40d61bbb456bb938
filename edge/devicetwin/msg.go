package devicetwin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Limits on what apps and mappers send over MQTT; the broker may allow far larger
// messages, so the twin bounds its own work.
const (
	// MaxPayload is the largest MQTT request payload the twin decodes.
	MaxPayload = 64 << 10
	// maxProperties bounds the properties of one twin update.
	maxProperties = 256
	// maxMetadata bounds the metadata entries of one reported value (DMI).
	maxMetadata = 32
	// maxMetadataLen bounds one metadata key or value (DMI).
	maxMetadataLen = 256
)

// Result codes of twin/update/result, HTTP-like as KubeEdge's.
const (
	codeBadRequest = 400 // not JSON, wrong field types, invalid value, unknown property
	codeNotFound   = 404 // no such device on this node
	codeTooLarge   = 413 // payload above MaxPayload
	codeInternal   = 500 // the store failed
)

// The JSON shapes of spec §5. Field names are KubeEdge's (snake_case).

type baseMessage struct {
	EventID   string `json:"event_id"`
	Timestamp int64  `json:"timestamp"`
}

// valueMetadata is a twin value's metadata on MQTT: the time it was set, Unix ms.
type valueMetadata struct {
	Timestamp int64 `json:"timestamp,omitempty"`
}

type msgValue struct {
	Value    *string        `json:"value,omitempty"`
	Metadata *valueMetadata `json:"metadata,omitempty"`
}

type typeMetadata struct {
	Type string `json:"type,omitempty"`
}

type msgVersion struct {
	Cloud int64 `json:"cloud"`
	Edge  int64 `json:"edge"`
}

// msgTwin is one twin entry.
type msgTwin struct {
	Expected        *msgValue     `json:"expected,omitempty"`
	Actual          *msgValue     `json:"actual,omitempty"`
	Optional        *bool         `json:"optional,omitempty"`
	Metadata        *typeMetadata `json:"metadata,omitempty"`
	ExpectedVersion *msgVersion   `json:"expected_version,omitempty"`
	ActualVersion   *msgVersion   `json:"actual_version,omitempty"`
}

type twinMessage struct {
	baseMessage
	Twin map[string]*msgTwin `json:"twin"`
}

type errorResult struct {
	baseMessage
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

type deltaMessage struct {
	baseMessage
	Twin  map[string]*msgTwin `json:"twin"`
	Delta map[string]string   `json:"delta"`
}

type docEntry struct {
	Last    *msgTwin `json:"last"`
	Current *msgTwin `json:"current"`
}

type documentMessage struct {
	baseMessage
	Twin map[string]*docEntry `json:"twin"`
}

type stateRequest struct {
	baseMessage
	State string `json:"state"`
}

// msgDevice is a device as membership and state messages describe it.
type msgDevice struct {
	ID          string              `json:"id,omitempty"`
	Name        string              `json:"name,omitempty"`
	Description string              `json:"description,omitempty"`
	State       string              `json:"state,omitempty"`
	LastOnline  string              `json:"last_online,omitempty"`
	Twin        map[string]*msgTwin `json:"twin,omitempty"`
}

type stateResult struct {
	baseMessage
	Device msgDevice `json:"device"`
}

type deviceUpdated struct {
	baseMessage
	State string `json:"state,omitempty"`
}

type membershipResult struct {
	baseMessage
	Devices []msgDevice `json:"devices"`
}

type membershipUpdated struct {
	baseMessage
	AddedDevices   []msgDevice `json:"added_devices"`
	RemovedDevices []msgDevice `json:"removed_devices"`
}

// requestError is a refused request and the code its result carries.
type requestError struct {
	code   int
	reason string
}

func (e *requestError) Error() string { return fmt.Sprintf("%d: %s", e.code, e.reason) }

func badRequest(format string, args ...any) *requestError {
	return &requestError{code: codeBadRequest, reason: fmt.Sprintf(format, args...)}
}

// decodeStrict decodes one JSON object into v. Unknown fields are allowed (apps send
// more than we read), trailing data is not.
func decodeStrict(payload []byte, v any) *requestError {
	if len(payload) > MaxPayload {
		return &requestError{code: codeTooLarge, reason: fmt.Sprintf("payload of %d bytes is above the limit of %d", len(payload), MaxPayload)}
	}
	if t := bytes.TrimSpace(payload); len(t) == 0 || t[0] != '{' {
		return badRequest("payload must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON: %s", shorten(err.Error()))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("trailing data after the JSON object")
	}
	return nil
}

// decodeTwinUpdate decodes a twin/update payload. Every entry must name a property and
// carry a value in expected or actual (or both).
func decodeTwinUpdate(payload []byte) (*twinMessage, *requestError) {
	var m twinMessage
	if err := decodeStrict(payload, &m); err != nil {
		return &m, err
	}
	if len(m.Twin) == 0 {
		return &m, badRequest("twin is empty")
	}
	if len(m.Twin) > maxProperties {
		return &m, badRequest("twin has %d properties, at most %d are allowed", len(m.Twin), maxProperties)
	}
	for name, t := range m.Twin {
		switch {
		case name == "":
			return &m, badRequest("a twin property has an empty name")
		case t == nil:
			return &m, badRequest("twin %q is null", name)
		case t.Expected == nil && t.Actual == nil:
			return &m, badRequest("twin %q has neither expected nor actual", name)
		case t.Expected != nil && t.Expected.Value == nil:
			return &m, badRequest("twin %q: expected has no value", name)
		case t.Actual != nil && t.Actual.Value == nil:
			return &m, badRequest("twin %q: actual has no value", name)
		}
	}
	return &m, nil
}

// decodeBase decodes a request that carries only event_id and timestamp (twin/get,
// membership/get). An empty payload is accepted: some apps send none.
func decodeBase(payload []byte) (*baseMessage, *requestError) {
	var m baseMessage
	if len(bytes.TrimSpace(payload)) == 0 {
		return &m, nil
	}
	return &m, decodeStrict(payload, &m)
}

// decodeState decodes a state/update payload and checks the state.
func decodeState(payload []byte) (*stateRequest, *requestError) {
	var m stateRequest
	if err := decodeStrict(payload, &m); err != nil {
		return &m, err
	}
	if !validState(m.State) {
		return &m, badRequest("state %q is not one of %s", shorten(m.State), strings.Join(states, ", "))
	}
	return &m, nil
}

// states are the device states KubeEdge's DeviceStatus knows, plus "disconnected"
// which mappers send.
var states = []string{"ok", "online", "offline", "unhealthy", "unknown", "disconnected"}

func validState(s string) bool { return slices.Contains(states, s) }

// onlineState says whether a device in state s is reachable, which moves lastOnlineTime.
func onlineState(s string) bool { return s == "online" || s == "ok" }

// shorten keeps untrusted text in replies and logs short.
func shorten(s string) string {
	const limit = 200
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}
