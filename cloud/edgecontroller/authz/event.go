package authz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxEventContent caps the event we parse. The codec already caps whole messages; a real
// event is a few KiB, so this only keeps the token walk short.
const maxEventContent = 64 << 10

// objectRef is the part of a core/v1 Event's involvedObject the decision needs.
type objectRef struct {
	kind, namespace, name string
}

// involvedObject reads content.involvedObject strictly. encoding/json, which later consumers
// use, matches keys case-insensitively and keeps the last duplicate; so any second
// involvedObject/kind/namespace/name, even in another case, is refused rather than letting
// the authorizer and the consumer read different objects.
func involvedObject(content []byte) (objectRef, error) {
	if len(content) > maxEventContent {
		return objectRef{}, fmt.Errorf("event content is larger than %d bytes", maxEventContent)
	}
	dec := json.NewDecoder(bytes.NewReader(content))
	var ref objectRef
	found := false
	err := walkObject(dec, func(key string) error {
		if key != "involvedObject" {
			if strings.EqualFold(key, "involvedObject") {
				return fmt.Errorf("ambiguous key %q in event", clip(key))
			}
			return skipValue(dec)
		}
		if found {
			return errors.New("duplicate involvedObject in event")
		}
		found = true
		var err error
		ref, err = readRef(dec)
		return err
	})
	if err != nil {
		return objectRef{}, fmt.Errorf("event content: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return objectRef{}, errors.New("event content: trailing data after the event")
	}
	if !found {
		return objectRef{}, errors.New("event content has no involvedObject")
	}
	return ref, nil
}

func readRef(dec *json.Decoder) (objectRef, error) {
	var ref objectRef
	seen := map[string]bool{}
	err := walkObject(dec, func(key string) error {
		var dst *string
		for want, p := range map[string]*string{"kind": &ref.kind, "namespace": &ref.namespace, "name": &ref.name} {
			if key == want {
				dst = p
			} else if strings.EqualFold(key, want) {
				return fmt.Errorf("ambiguous key %q in involvedObject", clip(key))
			}
		}
		if dst == nil {
			return skipValue(dec)
		}
		if seen[key] {
			return fmt.Errorf("duplicate %q in involvedObject", key)
		}
		seen[key] = true
		t, err := dec.Token()
		if err != nil {
			return err
		}
		s, ok := t.(string)
		if !ok {
			return fmt.Errorf("involvedObject.%s is not a string", key)
		}
		*dst = s
		return nil
	})
	return ref, err
}

// walkObject reads one JSON object, calling field for each key with the decoder positioned
// at its value; field must consume the value.
func walkObject(dec *json.Decoder, field func(key string) error) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return errors.New("want a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := t.(string)
		if !ok {
			return errors.New("want an object key")
		}
		if err := field(key); err != nil {
			return err
		}
	}
	_, err = dec.Token() // the closing brace; Token checks it matches
	return err
}

// skipValue consumes one value of any kind; Token checks the syntax as it goes.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}
