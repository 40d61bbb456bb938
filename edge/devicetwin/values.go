package devicetwin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
)

// Value types (the DeviceModel's property types) and how their values are written:
//
//   - INT: a decimal integer that fits in int64. "1.0" (and "1e3") are accepted because
//     they are integral; "1.5" is not. Compared as integers, so "1" equals "1.0".
//   - FLOAT, DOUBLE: a decimal or exponent float (strconv.ParseFloat); FLOAT must fit in
//     float32. NaN and infinities are refused (they compare unequal to themselves).
//     Compared as numbers, so "1" equals "1.0".
//   - BOOLEAN: what strconv.ParseBool accepts (true/false, 1/0, t/f, TRUE/FALSE, ...),
//     compared as booleans, because mappers written in various languages spell them
//     differently.
//   - BYTES: standard base64 with padding, compared as the decoded bytes.
//   - STRING, and properties whose model is not known yet: any text, compared exactly.
//   - STREAM: not a twin value; every update to it is refused.
//
// minimum and maximum from the model bound INT, FLOAT and DOUBLE expected values when
// they parse as numbers (a non-numeric bound is ignored). Reported values are checked for
// their type only: a device that reads out of range is a fact worth reporting.

var errStream = errors.New("STREAM properties carry no twin value")

// checkValue reports whether s is a valid value of property type typ.
func checkValue(typ devicesv1beta1.PropertyType, s string) error {
	_, err := parseValue(typ, s)
	return err
}

// checkRange checks s (already valid for typ) against the model's bounds.
func checkRange(mp *devicesv1beta1.ModelProperty, s string) error {
	if mp == nil {
		return nil
	}
	switch mp.Type {
	case devicesv1beta1.PropertyTypeInt, devicesv1beta1.PropertyTypeFloat, devicesv1beta1.PropertyTypeDouble:
	default:
		return nil
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return nil // checkValue has the say on the syntax
	}
	if lo, err := strconv.ParseFloat(strings.TrimSpace(mp.Minimum), 64); err == nil && v < lo {
		return fmt.Errorf("value %s is below the minimum %s", s, mp.Minimum)
	}
	if hi, err := strconv.ParseFloat(strings.TrimSpace(mp.Maximum), 64); err == nil && v > hi {
		return fmt.Errorf("value %s is above the maximum %s", s, mp.Maximum)
	}
	return nil
}

// parseValue returns a comparable form of s for typ.
func parseValue(typ devicesv1beta1.PropertyType, s string) (any, error) {
	switch typ {
	case devicesv1beta1.PropertyTypeInt:
		t := strings.TrimSpace(s)
		if n, err := strconv.ParseInt(t, 10, 64); err == nil {
			return n, nil
		}
		f, err := strconv.ParseFloat(t, 64)
		// 2^63 itself does not fit in int64; every float below it that is integral does.
		if err != nil || f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
			return nil, fmt.Errorf("%q is not an integer (INT)", s)
		}
		return int64(f), nil
	case devicesv1beta1.PropertyTypeFloat, devicesv1beta1.PropertyTypeDouble:
		bits := 64
		if typ == devicesv1beta1.PropertyTypeFloat {
			bits = 32
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), bits)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%q is not a finite number (%s)", s, typ)
		}
		return f, nil
	case devicesv1beta1.PropertyTypeBoolean:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not a boolean (BOOLEAN: true or false)", s)
		}
		return b, nil
	case devicesv1beta1.PropertyTypeBytes:
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not standard base64 (BYTES)", s)
		}
		return string(b), nil
	case devicesv1beta1.PropertyTypeStream:
		return nil, errStream
	}
	return s, nil
}

// equalValues compares two values of typ by meaning; a value that does not parse only
// equals the same text.
func equalValues(typ devicesv1beta1.PropertyType, a, b string) bool {
	if a == b {
		return true
	}
	va, errA := parseValue(typ, a)
	vb, errB := parseValue(typ, b)
	return errA == nil && errB == nil && va == vb
}

// typeName is the lower-case type KubeEdge's MQTT twin metadata carries ("int", "float",
// ...); "string" when the model is unknown.
func typeName(typ devicesv1beta1.PropertyType) string {
	if typ == "" {
		return "string"
	}
	return strings.ToLower(string(typ))
}
