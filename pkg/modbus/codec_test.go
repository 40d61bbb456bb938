package modbus

import (
	"math"
	"reflect"
	"slices"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	f32 := math.Float32bits(21.5) // 0x41AC0000
	for _, tc := range []struct {
		name  string
		c     Codec
		regs  []uint16
		value any
	}{
		{"int16 negative", Codec{Type: TypeInt16}, []uint16{0xFFFB}, int64(-5)},
		{"uint16", Codec{Type: TypeUint16}, []uint16{0xFFFB}, uint64(65531)},
		{"int32", Codec{Type: TypeInt32}, []uint16{0xFFFF, 0xFFFE}, int64(-2)},
		{"uint32 word swap", Codec{Type: TypeUint32, WordSwap: true}, []uint16{0x5678, 0x1234}, uint64(0x12345678)},
		{"uint32 byte swap", Codec{Type: TypeUint32, ByteSwap: true}, []uint16{0x3412, 0x7856}, uint64(0x12345678)},
		{"uint32 both swaps", Codec{Type: TypeUint32, ByteSwap: true, WordSwap: true}, []uint16{0x7856, 0x3412}, uint64(0x12345678)},
		{"int64", Codec{Type: TypeInt64}, []uint16{0x8000, 0, 0, 0}, int64(math.MinInt64)},
		{"uint64 max", Codec{Type: TypeUint64}, []uint16{0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF}, uint64(math.MaxUint64)},
		{"float32", Codec{Type: TypeFloat32}, []uint16{uint16(f32 >> 16), uint16(f32)}, 21.5},
		{"float32 word swap", Codec{Type: TypeFloat32, WordSwap: true}, []uint16{uint16(f32), uint16(f32 >> 16)}, 21.5},
		{"float64", Codec{Type: TypeFloat64}, []uint16{0x4035, 0x8000, 0, 0}, 21.5},
		{"scaled int16", Codec{Type: TypeInt16, Scale: 0.1}, []uint16{215}, 21.5},
		{"scale and offset", Codec{Type: TypeUint16, Scale: 2, Offset: -40}, []uint16{30}, 20.0},
		{"boolean register", Codec{Type: TypeBoolean}, []uint16{1}, true},
		{"string", Codec{Type: TypeString, Count: 3}, []uint16{0x4142, 0x4300, 0}, "ABC"},
		{"string byte swap", Codec{Type: TypeString, Count: 2, ByteSwap: true}, []uint16{0x4241, 0x0043}, "ABC"},
		{"bytes", Codec{Type: TypeBytes, Count: 2}, []uint16{0x0102, 0x0304}, []byte{1, 2, 3, 4}},
	} {
		got, err := tc.c.DecodeRegisters(tc.regs)
		if err != nil {
			t.Errorf("%s: decode: %v", tc.name, err)
			continue
		}
		if f, ok := got.(float64); ok {
			if w, ok := tc.value.(float64); !ok || math.Abs(f-w) > 1e-9 {
				t.Errorf("%s: decoded %v, want %v", tc.name, got, tc.value)
			}
		} else if !reflect.DeepEqual(got, tc.value) {
			t.Errorf("%s: decoded %#v, want %#v", tc.name, got, tc.value)
		}
		regs, err := tc.c.EncodeRegisters(tc.value)
		if err != nil {
			t.Errorf("%s: encode: %v", tc.name, err)
			continue
		}
		if !slices.Equal(regs, tc.regs) {
			t.Errorf("%s: encoded %04x, want %04x", tc.name, regs, tc.regs)
		}
	}
}

func TestCodecErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Codec
		v    any
	}{
		{"int16 overflow", Codec{Type: TypeInt16}, int64(40000)},
		{"int16 underflow", Codec{Type: TypeInt16}, int64(-40000)},
		{"uint16 negative", Codec{Type: TypeUint16}, int64(-1)},
		{"uint16 float overflow", Codec{Type: TypeUint16}, 65535.6},
		{"uint64 negative float", Codec{Type: TypeUint64}, -1.0},
		{"int64 from huge uint64", Codec{Type: TypeInt64}, uint64(math.MaxUint64)},
		{"scaled overflow", Codec{Type: TypeInt16, Scale: 0.001}, 40.0},
		{"NaN", Codec{Type: TypeFloat32}, math.NaN()},
		{"float32 overflow", Codec{Type: TypeFloat32}, 1e300},
		{"string too long", Codec{Type: TypeString, Count: 1}, "ABC"},
		{"bool for int", Codec{Type: TypeInt16}, true},
		{"number for bool", Codec{Type: TypeBoolean}, int64(1)},
		{"wrong count", Codec{Type: TypeFloat32, Count: 1}, 1.0},
		{"string without count", Codec{Type: TypeString}, "A"},
		{"unknown type", Codec{Type: "int128"}, int64(1)},
		{"infinite scale", Codec{Type: TypeInt16, Scale: math.Inf(1)}, int64(1)},
	} {
		if regs, err := tc.c.EncodeRegisters(tc.v); err == nil {
			t.Errorf("%s: encoded %04x", tc.name, regs)
		}
	}
	if _, err := (Codec{Type: TypeInt32}).DecodeRegisters([]uint16{1}); err == nil {
		t.Error("short register slice decoded")
	}
	if _, err := (Codec{Type: TypeInt16, Bits: true, Count: 17}).DecodeBits(make([]bool, 17)); err == nil {
		t.Error("17 bits decoded as int16")
	}
}

func TestCodecBits(t *testing.T) {
	b := Codec{Type: TypeBoolean, Bits: true}
	if v, err := b.DecodeBits([]bool{true}); err != nil || v != true {
		t.Fatalf("%v, %v", v, err)
	}
	if bits, err := b.EncodeBits(false); err != nil || !slices.Equal(bits, []bool{false}) {
		t.Fatalf("%v, %v", bits, err)
	}
	n := Codec{Type: TypeUint16, Bits: true, Count: 4}
	if v, err := n.DecodeBits([]bool{true, false, true, true}); err != nil || v != uint64(13) {
		t.Fatalf("%v, %v", v, err)
	}
	if bits, err := n.EncodeBits(int64(13)); err != nil || !slices.Equal(bits, []bool{true, false, true, true}) {
		t.Fatalf("%v, %v", bits, err)
	}
	if _, err := n.EncodeBits(int64(16)); err == nil {
		t.Fatal("16 fits in 4 bits?")
	}
	if _, err := n.DecodeRegisters([]uint16{1}); err == nil {
		t.Fatal("bit codec decoded registers")
	}
}
