package devicetwin

import "testing"

func FuzzDecodeTwinUpdate(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"1","timestamp":2,"twin":{"t":{"expected":{"value":"1"}}}}`,
		`{"twin":{"t":{"actual":{"value":"1","metadata":{"timestamp":3}},"optional":true,"metadata":{"type":"int"},"expected_version":{"cloud":1,"edge":2}}}}`,
		`{"twin":{"t":null}}`, `{"twin":{}}`, `{}`, `[]`, `null`, `{"twin":{"t":{"expected":{"value":5}}}}`, `{"a":1} x`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, rerr := decodeTwinUpdate(b)
		if m == nil {
			t.Fatal("nil message")
		}
		if rerr != nil {
			if rerr.code == 0 || rerr.reason == "" {
				t.Fatalf("error without code or reason: %+v", rerr)
			}
			return
		}
		if len(m.Twin) == 0 || len(m.Twin) > maxProperties {
			t.Fatalf("accepted %d properties", len(m.Twin))
		}
		for name, e := range m.Twin {
			if name == "" || e == nil || (e.Expected == nil && e.Actual == nil) ||
				(e.Expected != nil && e.Expected.Value == nil) || (e.Actual != nil && e.Actual.Value == nil) {
				t.Fatalf("accepted a bad entry %q: %+v", name, e)
			}
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	for _, s := range []string{`{"event_id":"1","state":"online"}`, `{"state":"x"}`, `{"state":1}`, `{}`, `x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, rerr := decodeState(b)
		if rerr == nil && !validState(m.State) {
			t.Fatalf("accepted state %q", m.State)
		}
	})
}

func FuzzDecodeBase(f *testing.F) {
	for _, s := range []string{`{"event_id":"1","timestamp":2}`, ``, ` `, `{"timestamp":"x"}`, `{}`, `1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, rerr := decodeBase(b); m == nil || (rerr != nil && rerr.code == 0) {
			t.Fatalf("decodeBase = %v, %v", m, rerr)
		}
	})
}

func FuzzTopicDevice(f *testing.F) {
	for _, s := range []string{"$hw/events/device/default/d/twin/update", "$hw/events/device/a/b/c/twin/update", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		k, err := topicDevice(topic, "twin/update")
		if err == nil {
			if got := deviceTopic(k, "twin/update"); got != topic {
				t.Fatalf("topic %q parsed to %v, which is %q", topic, k, got)
			}
		}
	})
}
