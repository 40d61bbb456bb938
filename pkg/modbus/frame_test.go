package modbus

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestCRC16(t *testing.T) {
	// Read holding register 0, quantity 1, of unit 1: a well-known frame 01 03 00 00 00 01 84 0A.
	f, err := AppendRTUFrame(nil, RTUFrame{Address: 1, PDU: PDU{FuncReadHoldingRegisters, []byte{0, 0, 0, 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 3, 0, 0, 0, 1, 0x84, 0x0A}; !bytes.Equal(f, want) {
		t.Fatalf("frame % x, want % x", f, want)
	}
	if got := CRC16([]byte("123456789")); got != 0x4B37 {
		t.Fatalf("check value %04x, want 4b37", got)
	}
}

func TestRTUFrames(t *testing.T) {
	good, _ := AppendRTUFrame(nil, RTUFrame{Address: 7, PDU: PDU{FuncReadInputRegisters, []byte{4, 0, 1, 0, 2}}})
	f, err := ReadRTUResponse(bytes.NewReader(good))
	if err != nil || f.Address != 7 || f.PDU.Function != FuncReadInputRegisters || len(f.PDU.Data) != 5 {
		t.Fatalf("%+v, %v", f, err)
	}
	bad := append([]byte(nil), good...)
	bad[3] ^= 1
	if _, err := ReadRTUResponse(bytes.NewReader(bad)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("bad CRC: %v", err)
	}
	if _, err := ReadRTUResponse(bytes.NewReader(good[:5])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := ReadRTUResponse(bytes.NewReader([]byte{1, 0x42, 0, 0, 0})); !errors.Is(err, ErrProtocol) {
		t.Fatalf("unknown function: %v", err)
	}
	req, _ := WriteMultipleRegistersRequest(3, []uint16{1, 2})
	wr, _ := AppendRTUFrame(nil, RTUFrame{Address: 2, PDU: req})
	wr = append(wr, 0xEE) // the next frame's first byte must stay unread
	r := bytes.NewReader(wr)
	f, err = ReadRTURequest(r)
	if err != nil || f.PDU.Function != FuncWriteMultipleRegisters || r.Len() != 1 {
		t.Fatalf("%+v, %v, %d left", f, err, r.Len())
	}
	exc, _ := AppendRTUFrame(nil, RTUFrame{Address: 2, PDU: exception(FuncReadCoils, ExceptionIllegalDataAddress)})
	if f, err := ReadRTUResponse(bytes.NewReader(exc)); err != nil || f.PDU.Function != FuncReadCoils|exceptionFlag {
		t.Fatalf("exception frame: %+v, %v", f, err)
	}
}

func TestTCPFrames(t *testing.T) {
	b, err := AppendTCPFrame(nil, TCPFrame{Transaction: 0x1234, Unit: 9, PDU: PDU{FuncReadCoils, []byte{0, 1, 0, 8}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x12, 0x34, 0, 0, 0, 6, 9, 1, 0, 1, 0, 8}; !bytes.Equal(b, want) {
		t.Fatalf("% x, want % x", b, want)
	}
	f, err := DecodeTCPFrame(b)
	if err != nil || f.Transaction != 0x1234 || f.Unit != 9 || f.PDU.Function != FuncReadCoils {
		t.Fatalf("%+v, %v", f, err)
	}
	for name, in := range map[string][]byte{
		"protocol id": {0, 1, 0, 1, 0, 6, 9, 1, 0, 1, 0, 8},
		"length 1":    {0, 1, 0, 0, 0, 1, 9},
		"length 255":  {0, 1, 0, 0, 0, 255, 9},
		"truncated":   {0, 1, 0, 0, 0, 6, 9, 1},
		"trailing":    append(append([]byte(nil), b...), 0),
	} {
		if _, err := DecodeTCPFrame(in); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want a protocol error", name, err)
		}
	}
	if _, err := AppendTCPFrame(nil, TCPFrame{PDU: PDU{FuncReadCoils, make([]byte, MaxPDUSize)}}); err == nil {
		t.Error("oversize PDU encoded")
	}
}
