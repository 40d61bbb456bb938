package modbus

import (
	"bytes"
	"errors"
	"testing"
)

func TestRequestEncoding(t *testing.T) {
	rd, err := ReadRequest(FuncReadHoldingRegisters, 0x006B, 3)
	if err != nil {
		t.Fatal(err)
	}
	wmc, err := WriteMultipleCoilsRequest(0x0013, []bool{true, false, true, true, false, false, true, true, true, false})
	if err != nil {
		t.Fatal(err)
	}
	wmr, err := WriteMultipleRegistersRequest(0x0001, []uint16{0x000A, 0x0102})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pdu  PDU
		want []byte
	}{
		// The examples of the Modbus application protocol specification.
		{"read holding", rd, []byte{0x03, 0x00, 0x6B, 0x00, 0x03}},
		{"write coil", WriteSingleCoilRequest(0x00AC, true), []byte{0x05, 0x00, 0xAC, 0xFF, 0x00}},
		{"write register", WriteSingleRegisterRequest(0x0001, 0x0003), []byte{0x06, 0x00, 0x01, 0x00, 0x03}},
		{"write coils", wmc, []byte{0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01}},
		{"write registers", wmr, []byte{0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02}},
	} {
		if got := appendPDU(nil, tc.pdu); !bytes.Equal(got, tc.want) {
			t.Errorf("%s: got % x, want % x", tc.name, got, tc.want)
		}
	}
}

func TestQuantityLimits(t *testing.T) {
	for _, tc := range []struct {
		f     FunctionCode
		limit int
	}{
		{FuncReadCoils, MaxReadBits}, {FuncReadDiscreteInputs, MaxReadBits},
		{FuncReadHoldingRegisters, MaxReadRegisters}, {FuncReadInputRegisters, MaxReadRegisters},
	} {
		if _, err := ReadRequest(tc.f, 0, tc.limit); err != nil {
			t.Errorf("%s %d: %v", tc.f, tc.limit, err)
		}
		if _, err := ReadRequest(tc.f, 0, tc.limit+1); err == nil {
			t.Errorf("%s %d: accepted", tc.f, tc.limit+1)
		}
		if _, err := ReadRequest(tc.f, 0, 0); err == nil {
			t.Errorf("%s 0: accepted", tc.f)
		}
	}
	if _, err := ReadRequest(FuncReadHoldingRegisters, 0xFFFF, 2); err == nil {
		t.Error("read past 0xFFFF accepted")
	}
	if _, err := ReadRequest(FuncWriteSingleCoil, 0, 1); err == nil {
		t.Error("ReadRequest accepted a write function")
	}
	if _, err := WriteMultipleCoilsRequest(0, make([]bool, MaxWriteBits+1)); err == nil {
		t.Error("too many coils accepted")
	}
	if _, err := WriteMultipleRegistersRequest(0, make([]uint16, MaxWriteRegisters+1)); err == nil {
		t.Error("too many registers accepted")
	}
	if _, err := WriteMultipleRegistersRequest(0, make([]uint16, MaxWriteRegisters)); err != nil {
		t.Error(err)
	}
}

func TestDecodeResponses(t *testing.T) {
	req, _ := ReadRequest(FuncReadCoils, 0x13, 19)
	bits, err := DecodeBitsResponse(req, 19, PDU{FuncReadCoils, []byte{3, 0xCD, 0x6B, 0x05}})
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{true, false, true, true, false, false, true, true, true, true, false, true, false, true, true, false, true, false, true}
	for i := range want {
		if bits[i] != want[i] {
			t.Fatalf("bit %d = %v, want %v (%v)", i, bits[i], want[i], bits)
		}
	}
	rreq, _ := ReadRequest(FuncReadHoldingRegisters, 0x6B, 3)
	regs, err := DecodeRegistersResponse(rreq, 3, PDU{FuncReadHoldingRegisters, []byte{6, 0x02, 0x2B, 0, 0, 0, 0x64}})
	if err != nil || regs[0] != 0x022B || regs[2] != 0x64 {
		t.Fatalf("regs %v, %v", regs, err)
	}
	// Malformed answers are protocol errors.
	for _, resp := range []PDU{
		{FuncReadHoldingRegisters, nil},
		{FuncReadHoldingRegisters, []byte{6, 0, 0}},
		{FuncReadHoldingRegisters, []byte{4, 0, 0, 0, 0}},
		{FuncReadHoldingRegisters, []byte{6, 0, 0, 0, 0, 0, 0, 0}},
		{FuncReadInputRegisters, []byte{6, 0, 0, 0, 0, 0, 0}},
		{FuncReadHoldingRegisters | exceptionFlag, nil},
	} {
		if _, err := DecodeRegistersResponse(rreq, 3, resp); !errors.Is(err, ErrProtocol) {
			t.Errorf("% x: err %v, want a protocol error", appendPDU(nil, resp), err)
		}
	}
	_, err = DecodeRegistersResponse(rreq, 3, PDU{FuncReadHoldingRegisters | exceptionFlag, []byte{2}})
	var ex *ExceptionError
	if !errors.As(err, &ex) || ex.Code != ExceptionIllegalDataAddress || ex.Function != FuncReadHoldingRegisters {
		t.Fatalf("err %v, want an illegal data address exception", err)
	}
	if got := ex.Error(); got != "modbus exception 2 (illegal data address) for ReadHoldingRegisters" {
		t.Errorf("message %q", got)
	}
	w := WriteSingleRegisterRequest(1, 3)
	if err := DecodeWriteResponse(w, PDU{FuncWriteSingleRegister, []byte{0, 1, 0, 3}}); err != nil {
		t.Error(err)
	}
	if err := DecodeWriteResponse(w, PDU{FuncWriteSingleRegister, []byte{0, 1, 0, 4}}); !errors.Is(err, ErrProtocol) {
		t.Errorf("wrong echo: %v", err)
	}
}
