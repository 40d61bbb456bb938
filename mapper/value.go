package mapper

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Type is a DeviceModel property type.
type Type string

// The property types of the DeviceModel API. STREAM properties are not polled.
const (
	TypeInt     Type = "INT"
	TypeFloat   Type = "FLOAT"
	TypeDouble  Type = "DOUBLE"
	TypeString  Type = "STRING"
	TypeBoolean Type = "BOOLEAN"
	TypeBytes   Type = "BYTES"
)

// ParseType accepts a model type in any letter case.
func ParseType(s string) (Type, error) {
	t := Type(strings.ToUpper(strings.TrimSpace(s)))
	switch t {
	case TypeInt, TypeFloat, TypeDouble, TypeString, TypeBoolean, TypeBytes:
		return t, nil
	}
	return "", fmt.Errorf("unsupported property type %q", s)
}

// Numeric reports whether values of t have a numeric range.
func (t Type) Numeric() bool { return t == TypeInt || t == TypeFloat || t == TypeDouble }

// maxValueLen bounds one value's string form: twins travel to the cloud.
const maxValueLen = 64 << 10

// Value is a typed property value in its canonical string form, the form twins carry: decimal
// for numbers, "true"/"false" for booleans, standard base64 for bytes. The zero Value is invalid.
type Value struct {
	typ Type
	s   string
}

// Type is the value's type.
func (v Value) Type() Type { return v.typ }

// String is the canonical string form.
func (v Value) String() string { return v.s }

// IsZero reports whether v is the zero (invalid) Value.
func (v Value) IsZero() bool { return v.typ == "" }

// IntValue makes an INT value.
func IntValue(i int64) Value { return Value{TypeInt, strconv.FormatInt(i, 10)} }

// FloatValue makes a FLOAT value (single precision, as the model type says).
func FloatValue(f float32) Value {
	return Value{TypeFloat, strconv.FormatFloat(float64(f), 'g', -1, 32)}
}

// DoubleValue makes a DOUBLE value.
func DoubleValue(f float64) Value { return Value{TypeDouble, strconv.FormatFloat(f, 'g', -1, 64)} }

// BoolValue makes a BOOLEAN value.
func BoolValue(b bool) Value { return Value{TypeBoolean, strconv.FormatBool(b)} }

// StringValue makes a STRING value.
func StringValue(s string) Value { return Value{TypeString, s} }

// BytesValue makes a BYTES value.
func BytesValue(b []byte) Value { return Value{TypeBytes, base64.StdEncoding.EncodeToString(b)} }

// ParseValue parses s as a value of type t and returns it in canonical form.
func ParseValue(t Type, s string) (Value, error) {
	if len(s) > maxValueLen {
		return Value{}, fmt.Errorf("value is %d bytes, limit %d", len(s), maxValueLen)
	}
	in := strings.TrimSpace(s)
	switch t {
	case TypeInt:
		i, err := strconv.ParseInt(in, 10, 64)
		if err != nil {
			// Accept an integral decimal like "20.0": numbers often arrive via JSON floats.
			f, ferr := strconv.ParseFloat(in, 64)
			if ferr != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
				return Value{}, fmt.Errorf("%q is not an INT", s)
			}
			i = int64(f)
		}
		return IntValue(i), nil
	case TypeFloat, TypeDouble:
		bits := 64
		if t == TypeFloat {
			bits = 32
		}
		f, err := strconv.ParseFloat(in, bits)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return Value{}, fmt.Errorf("%q is not a finite %s", s, t)
		}
		if t == TypeFloat {
			return FloatValue(float32(f)), nil
		}
		return DoubleValue(f), nil
	case TypeBoolean:
		b, err := strconv.ParseBool(in)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not a BOOLEAN", s)
		}
		return BoolValue(b), nil
	case TypeBytes:
		b, err := base64.StdEncoding.DecodeString(in)
		if err != nil {
			return Value{}, fmt.Errorf("%q is not base64 BYTES: %w", s, err)
		}
		return BytesValue(b), nil
	case TypeString:
		return StringValue(s), nil
	}
	return Value{}, fmt.Errorf("unsupported property type %q", t)
}

// Int returns an INT value's number.
func (v Value) Int() (int64, error) {
	if v.typ != TypeInt {
		return 0, fmt.Errorf("value is %s, not INT", v.typ)
	}
	return strconv.ParseInt(v.s, 10, 64)
}

// Float returns the number of an INT, FLOAT or DOUBLE value.
func (v Value) Float() (float64, error) {
	if !v.typ.Numeric() {
		return 0, fmt.Errorf("value is %s, not a number", v.typ)
	}
	return strconv.ParseFloat(v.s, 64)
}

// Bool returns a BOOLEAN value's truth.
func (v Value) Bool() (bool, error) {
	if v.typ != TypeBoolean {
		return false, fmt.Errorf("value is %s, not BOOLEAN", v.typ)
	}
	return strconv.ParseBool(v.s)
}

// Bytes returns a BYTES value's bytes.
func (v Value) Bytes() ([]byte, error) {
	if v.typ != TypeBytes {
		return nil, fmt.Errorf("value is %s, not BYTES", v.typ)
	}
	return base64.StdEncoding.DecodeString(v.s)
}

// Check converts v to p's type when needed (a driver may return, say, a DOUBLE for a FLOAT
// property) and checks it against p's range. It is what the SDK applies to every value read or
// written.
func (p *Property) Check(v Value) (Value, error) {
	if v.IsZero() {
		return Value{}, fmt.Errorf("property %s: no value", p.Name)
	}
	if v.typ != p.Type {
		c, err := ParseValue(p.Type, v.s)
		if err != nil {
			return Value{}, fmt.Errorf("property %s: %w", p.Name, err)
		}
		v = c
	}
	if len(v.s) > maxValueLen {
		return Value{}, fmt.Errorf("property %s: value is %d bytes, limit %d", p.Name, len(v.s), maxValueLen)
	}
	if p.Type.Numeric() {
		f, err := v.Float()
		if err != nil {
			return Value{}, fmt.Errorf("property %s: %w", p.Name, err)
		}
		if p.Min != nil && f < *p.Min {
			return Value{}, fmt.Errorf("property %s: %s is below the minimum %g", p.Name, v.s, *p.Min)
		}
		if p.Max != nil && f > *p.Max {
			return Value{}, fmt.Errorf("property %s: %s is above the maximum %g", p.Name, v.s, *p.Max)
		}
	}
	return v, nil
}
