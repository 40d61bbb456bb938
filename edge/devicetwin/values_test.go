package devicetwin

import (
	"errors"
	"testing"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
)

func TestCheckValue(t *testing.T) {
	for _, c := range []struct {
		typ devicesv1beta1.PropertyType
		v   string
		ok  bool
	}{
		{"INT", "42", true}, {"INT", "-7", true}, {"INT", "1.0", true}, {"INT", "1e3", true},
		{"INT", "1.5", false}, {"INT", "", false}, {"INT", "x", false}, {"INT", "9223372036854775808", false}, {"INT", "1e300", false},
		{"FLOAT", "1.5", true}, {"FLOAT", "1e39", false}, {"FLOAT", "NaN", false}, {"FLOAT", "Inf", false},
		{"DOUBLE", "1e300", true}, {"DOUBLE", "-0.0", true}, {"DOUBLE", "abc", false},
		{"BOOLEAN", "true", true}, {"BOOLEAN", "False", true}, {"BOOLEAN", "1", true}, {"BOOLEAN", "yes", false},
		{"BYTES", "aGVsbG8=", true}, {"BYTES", "", true}, {"BYTES", "aGVsbG8", false},
		{"STRING", "", true}, {"STRING", "anything", true}, {"", "anything", true},
		{"STREAM", "rtsp://x", false},
	} {
		if err := checkValue(c.typ, c.v); (err == nil) != c.ok {
			t.Errorf("checkValue(%s, %q) = %v, want ok=%v", c.typ, c.v, err, c.ok)
		}
	}
	if err := checkValue("STREAM", "x"); !errors.Is(err, errStream) {
		t.Errorf("STREAM error = %v", err)
	}
}

func TestEqualValues(t *testing.T) {
	for _, c := range []struct {
		typ  devicesv1beta1.PropertyType
		a, b string
		eq   bool
	}{
		{"INT", "1", "1.0", true}, {"INT", "1", "2", false}, {"INT", "x", "x", true}, {"INT", "x", "1", false},
		{"FLOAT", "1", "1.0", true}, {"DOUBLE", "0.1", "1e-1", true}, {"DOUBLE", "0.1", "0.2", false},
		{"BOOLEAN", "true", "1", true}, {"BOOLEAN", "true", "false", false},
		{"BYTES", "aGk=", "aGk=", true}, {"BYTES", "aGk=", "aGo=", false},
		{"STRING", "1", "1.0", false}, {"STRING", "a", "a", true},
	} {
		if got := equalValues(c.typ, c.a, c.b); got != c.eq {
			t.Errorf("equalValues(%s, %q, %q) = %v", c.typ, c.a, c.b, got)
		}
	}
}

func TestCheckRange(t *testing.T) {
	mp := &devicesv1beta1.ModelProperty{Type: "INT", Minimum: "0", Maximum: "10"}
	for v, ok := range map[string]bool{"0": true, "10": true, "5.0": true, "-1": false, "11": false} {
		if err := checkRange(mp, v); (err == nil) != ok {
			t.Errorf("checkRange(0..10, %s) = %v", v, err)
		}
	}
	// Non-numeric bounds and non-numeric types are not bounded.
	if err := checkRange(&devicesv1beta1.ModelProperty{Type: "INT", Maximum: "lots"}, "99"); err != nil {
		t.Errorf("non-numeric maximum: %v", err)
	}
	if err := checkRange(&devicesv1beta1.ModelProperty{Type: "STRING", Maximum: "1"}, "99"); err != nil {
		t.Errorf("STRING with maximum: %v", err)
	}
}

func TestTopicDevice(t *testing.T) {
	for topic, ok := range map[string]bool{
		"$hw/events/device/default/d-1/twin/update":   true,
		"$hw/events/device/default/d.1/twin/update":   true,
		"$hw/events/device/d-1/twin/update":           false,
		"$hw/events/device/Default/d/twin/update":     false,
		"$hw/events/device/default/a/b/twin/update":   false,
		"$hw/events/device//d/twin/update":            false,
		"$hw/events/device/default//twin/update":      false,
		"$hw/events/device/default/d/twin/get":        false,
		"/events/device/default/d/twin/update":        false,
		"$hw/events/device/null/d/twin/update":        false,
		"$hw/events/device/default/d_x/twin/update":   false,
		"$hw/events/device/default/d/twin/update/x":   false,
		"$hw/events/device/default/d/twin//update":    false,
		"$hw/events/device/default/d/twin/update ":    false,
		"$hw/events/device/default/d/twin/update\x00": false,
	} {
		k, err := topicDevice(topic, "twin/update")
		if (err == nil) != ok {
			t.Errorf("topicDevice(%q) = %v, %v; want ok=%v", topic, k, err, ok)
		}
	}
}
