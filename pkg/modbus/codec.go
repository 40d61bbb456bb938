package modbus

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// DataType is how a run of registers (or bits) is interpreted.
type DataType string

// The data types of the value codec. Multi-register numbers are big-endian: the first
// register holds the most significant word (unless WordSwap), each register's first byte is
// its most significant (unless ByteSwap).
const (
	TypeInt16   DataType = "int16"
	TypeUint16  DataType = "uint16"
	TypeInt32   DataType = "int32"
	TypeUint32  DataType = "uint32"
	TypeInt64   DataType = "int64"
	TypeUint64  DataType = "uint64"
	TypeFloat32 DataType = "float32"
	TypeFloat64 DataType = "float64"
	// TypeBoolean is one bit, or one register that is true when non-zero.
	TypeBoolean DataType = "boolean"
	// TypeString is Count registers of ASCII, two characters each, NUL padded.
	TypeString DataType = "string"
	// TypeBytes is Count registers as raw bytes.
	TypeBytes DataType = "bytes"
)

// ParseDataType accepts a data type name in any letter case.
func ParseDataType(s string) (DataType, error) {
	d := DataType(strings.ToLower(strings.TrimSpace(s)))
	switch d {
	case TypeInt16, TypeUint16, TypeInt32, TypeUint32, TypeInt64, TypeUint64,
		TypeFloat32, TypeFloat64, TypeBoolean, TypeString, TypeBytes:
		return d, nil
	}
	return "", fmt.Errorf("unknown data type %q", s)
}

// fixedRegisters is the register count of a fixed-size type, 0 for variable ones.
func (d DataType) fixedRegisters() int {
	switch d {
	case TypeInt16, TypeUint16, TypeBoolean:
		return 1
	case TypeInt32, TypeUint32, TypeFloat32:
		return 2
	case TypeInt64, TypeUint64, TypeFloat64:
		return 4
	}
	return 0
}

func (d DataType) signed() bool { return d == TypeInt16 || d == TypeInt32 || d == TypeInt64 }

func (d DataType) isInt() bool {
	switch d {
	case TypeInt16, TypeUint16, TypeInt32, TypeUint32, TypeInt64, TypeUint64:
		return true
	}
	return false
}

// Codec converts between a typed value and the registers or bits that hold it.
//
// Decoded values are int64 (signed types), uint64 (unsigned types), float64, bool, string or
// []byte. With a Scale other than 1 or an Offset other than 0, numbers decode to
// float64(raw)*Scale+Offset and encode as (v-Offset)/Scale, rounded for integer types.
type Codec struct {
	Type DataType
	// Count is the number of registers (or bits, for bit tables) the value spans. 0 means the
	// type's natural size; string and bytes need it.
	Count int
	// Bits says the value lives in a bit table (coils, discrete inputs).
	Bits bool
	// ByteSwap swaps the two bytes inside each register.
	ByteSwap bool
	// WordSwap reverses the order of the registers.
	WordSwap bool
	Scale    float64
	Offset   float64
}

// Size is the number of registers or bits to read or write.
func (c Codec) Size() int {
	if c.Count > 0 {
		return c.Count
	}
	if c.Bits {
		return 1
	}
	return c.Type.fixedRegisters()
}

func (c Codec) scaled() bool { return (c.Scale != 0 && c.Scale != 1) || c.Offset != 0 }

func (c Codec) scale() float64 {
	if c.Scale == 0 {
		return 1
	}
	return c.Scale
}

// Validate checks that the codec describes a value this package can convert.
func (c Codec) Validate() error {
	if _, err := ParseDataType(string(c.Type)); err != nil {
		return err
	}
	if math.IsNaN(c.Scale) || math.IsInf(c.Scale, 0) || math.IsNaN(c.Offset) || math.IsInf(c.Offset, 0) {
		return fmt.Errorf("scale and offset must be finite numbers")
	}
	n := c.Size()
	if c.Bits {
		switch {
		case c.Type == TypeBoolean && n != 1:
			return fmt.Errorf("a boolean is 1 bit, not %d", n)
		case c.Type == TypeBoolean:
		case c.Type.isInt() && n >= 1 && n <= 8*2*c.Type.fixedRegisters():
		default:
			return fmt.Errorf("%d bits cannot hold a %s", n, c.Type)
		}
		if n > MaxReadBits {
			return fmt.Errorf("%d bits exceed %d", n, MaxReadBits)
		}
		return nil
	}
	if f := c.Type.fixedRegisters(); f != 0 && n != f {
		return fmt.Errorf("a %s is %d registers, not %d", c.Type, f, n)
	}
	if n < 1 || n > MaxReadRegisters {
		return fmt.Errorf("register count %d out of range 1..%d", n, MaxReadRegisters)
	}
	return nil
}

// registersToBytes applies the swaps and returns the value's bytes, most significant first.
func (c Codec) registersToBytes(regs []uint16) []byte {
	b := make([]byte, 0, 2*len(regs))
	for i := range regs {
		r := regs[i]
		if c.WordSwap {
			r = regs[len(regs)-1-i]
		}
		if c.ByteSwap {
			r = r<<8 | r>>8
		}
		b = binary.BigEndian.AppendUint16(b, r)
	}
	return b
}

func (c Codec) bytesToRegisters(b []byte) []uint16 {
	regs := make([]uint16, len(b)/2)
	for i := range regs {
		r := binary.BigEndian.Uint16(b[2*i:])
		if c.ByteSwap {
			r = r<<8 | r>>8
		}
		j := i
		if c.WordSwap {
			j = len(regs) - 1 - i
		}
		regs[j] = r
	}
	return regs
}

// DecodeRegisters converts registers to a value.
func (c Codec) DecodeRegisters(regs []uint16) (any, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Bits {
		return nil, fmt.Errorf("codec is for bits, not registers")
	}
	if len(regs) != c.Size() {
		return nil, fmt.Errorf("%s needs %d registers, got %d", c.Type, c.Size(), len(regs))
	}
	b := c.registersToBytes(regs)
	switch c.Type {
	case TypeBoolean:
		return b[0] != 0 || b[1] != 0, nil
	case TypeString:
		return string(bytes.TrimRight(b, "\x00")), nil
	case TypeBytes:
		return b, nil
	case TypeFloat32:
		return c.applyScale(float64(math.Float32frombits(binary.BigEndian.Uint32(b)))), nil
	case TypeFloat64:
		return c.applyScale(math.Float64frombits(binary.BigEndian.Uint64(b))), nil
	}
	var u uint64
	for _, x := range b {
		u = u<<8 | uint64(x)
	}
	return c.intResult(u, 8*len(b)), nil
}

// intResult turns the raw unsigned bits of a width-bit integer into the decoded value.
func (c Codec) intResult(u uint64, width int) any {
	if c.Type.signed() {
		i := int64(u<<(64-width)) >> (64 - width) // sign-extend

		if c.scaled() {
			return float64(i)*c.scale() + c.Offset
		}
		return i
	}
	if c.scaled() {
		return float64(u)*c.scale() + c.Offset
	}
	return u
}

func (c Codec) applyScale(f float64) float64 {
	if c.scaled() {
		return f*c.scale() + c.Offset
	}
	return f
}

// DecodeBits converts bits to a value: a bool, or for integer types the bits as an integer,
// first bit least significant.
func (c Codec) DecodeBits(bits []bool) (any, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Bits {
		return nil, fmt.Errorf("codec is for registers, not bits")
	}
	if len(bits) != c.Size() {
		return nil, fmt.Errorf("%s needs %d bits, got %d", c.Type, c.Size(), len(bits))
	}
	if c.Type == TypeBoolean {
		return bits[0], nil
	}
	var u uint64
	for i, b := range bits {
		if b {
			u |= 1 << i
		}
	}
	return c.intResult(u, len(bits)), nil
}

// EncodeBits converts a value (bool, or an integer for integer types) to bits.
func (c Codec) EncodeBits(v any) ([]bool, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Bits {
		return nil, fmt.Errorf("codec is for registers, not bits")
	}
	if c.Type == TypeBoolean {
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("a boolean needs a bool, got %T", v)
		}
		return []bool{b}, nil
	}
	u, err := c.rawInt(v, c.Size())
	if err != nil {
		return nil, err
	}
	out := make([]bool, c.Size())
	for i := range out {
		out[i] = u&(1<<i) != 0
	}
	return out, nil
}

// EncodeRegisters converts a value to registers. Numbers may be int64, uint64 or float64
// (an int or float32 is accepted too); booleans bool; strings string; bytes []byte.
func (c Codec) EncodeRegisters(v any) ([]uint16, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Bits {
		return nil, fmt.Errorf("codec is for bits, not registers")
	}
	n := c.Size()
	b := make([]byte, 2*n)
	switch c.Type {
	case TypeBoolean:
		x, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("a boolean needs a bool, got %T", v)
		}
		if x {
			b[1] = 1
		}
	case TypeString, TypeBytes:
		var src []byte
		switch x := v.(type) {
		case string:
			src = []byte(x)
		case []byte:
			src = x
		default:
			return nil, fmt.Errorf("a %s needs a string or bytes, got %T", c.Type, v)
		}
		if len(src) > len(b) {
			return nil, fmt.Errorf("%d bytes do not fit in %d registers", len(src), n)
		}
		copy(b, src)
	case TypeFloat32, TypeFloat64:
		f, err := toFloat(v)
		if err != nil {
			return nil, err
		}
		f = (f - c.Offset) / c.scale()
		if c.Type == TypeFloat32 {
			if math.Abs(f) > math.MaxFloat32 && !math.IsInf(f, 0) {
				return nil, fmt.Errorf("%g overflows a float32", f)
			}
			binary.BigEndian.PutUint32(b, math.Float32bits(float32(f)))
		} else {
			binary.BigEndian.PutUint64(b, math.Float64bits(f))
		}
	default:
		u, err := c.rawInt(v, 16*n)
		if err != nil {
			return nil, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			b[i] = byte(u)
			u >>= 8
		}
	}
	return c.bytesToRegisters(b), nil
}

// rawInt converts v to the raw width-bit pattern of c.Type, undoing scale and offset and
// checking the range.
func (c Codec) rawInt(v any, width int) (uint64, error) {
	var lo, hi float64 // range of the raw integer, for the float path
	if c.Type.signed() {
		lo, hi = -math.Ldexp(1, width-1), math.Ldexp(1, width-1)-1
	} else {
		lo, hi = 0, math.Ldexp(1, width)-1
	}
	mask := uint64(math.MaxUint64)
	if width < 64 {
		mask = 1<<width - 1
	}
	if !c.scaled() {
		// Exact integer paths: a float64 cannot hold every 64-bit integer.
		switch x := v.(type) {
		case int64:
			if c.Type.signed() {
				if width < 64 && (x < int64(lo) || x > int64(hi)) {
					return 0, fmt.Errorf("%d out of range for %d-bit %s", x, width, c.Type)
				}
				return uint64(x) & mask, nil
			}
			if x < 0 || (width < 64 && uint64(x) > mask) {
				return 0, fmt.Errorf("%d out of range for %d-bit %s", x, width, c.Type)
			}
			return uint64(x), nil
		case uint64:
			if c.Type.signed() {
				if x > uint64(hi) {
					return 0, fmt.Errorf("%d out of range for %d-bit %s", x, width, c.Type)
				}
				return x, nil
			}
			if x > mask {
				return 0, fmt.Errorf("%d out of range for %d-bit %s", x, width, c.Type)
			}
			return x, nil
		case int:
			return c.rawInt(int64(x), width)
		}
	}
	f, err := toFloat(v)
	if err != nil {
		return 0, err
	}
	f = math.Round((f - c.Offset) / c.scale())
	// hi+1 is exact as a float64 for every width; hi itself may round up for width 64.
	if math.IsNaN(f) || f < lo || f >= hi+1 {
		return 0, fmt.Errorf("%g out of range for %d-bit %s", f, width, c.Type)
	}
	if f < 0 {
		return uint64(int64(f)) & mask, nil
	}
	return uint64(f), nil
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("%g is not a finite number", x)
		}
		return x, nil
	case float32:
		return toFloat(float64(x))
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case int:
		return float64(x), nil
	}
	return 0, fmt.Errorf("a number is needed, got %T", v)
}
