package modbus

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// Every decoder of outside data must return an error for garbage, never panic, and
// whatever it accepts must encode back to the same bytes.

func FuzzReadTCPFrame(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1})
	f.Add([]byte{0, 1, 0, 0, 0, 3, 1, 0x83, 2})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 1})
	f.Add([]byte{0, 1, 0, 0, 0xFF, 0xFF, 1, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ReadTCPFrame(bytes.NewReader(b))
		if err != nil {
			return
		}
		out, err := AppendTCPFrame(nil, fr)
		if err != nil {
			t.Fatalf("accepted frame does not encode: %v", err)
		}
		if !bytes.Equal(out, b[:len(out)]) {
			t.Fatalf("re-encoded % x, read % x", out, b[:len(out)])
		}
	})
}

func FuzzReadRTUFrame(f *testing.F) {
	for _, p := range []PDU{
		{FuncReadHoldingRegisters, []byte{2, 0, 5}},
		{FuncReadCoils, []byte{0, 1, 0, 8}},
		{FuncWriteMultipleRegisters, []byte{0, 1, 0, 1, 2, 0, 7}},
		{FuncReadCoils | exceptionFlag, []byte{2}},
	} {
		b, _ := AppendRTUFrame(nil, RTUFrame{Address: 1, PDU: p})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, read := range []func(io.Reader) (RTUFrame, error){ReadRTUResponse, ReadRTURequest} {
			fr, err := read(bytes.NewReader(b))
			if err != nil {
				continue
			}
			out, err := AppendRTUFrame(nil, fr)
			if err != nil || !bytes.Equal(out, b[:len(out)]) {
				t.Fatalf("re-encoded % x (%v), read % x", out, err, b)
			}
		}
		if fr, err := DecodeRTUFrame(b); err == nil {
			if out, _ := AppendRTUFrame(nil, fr); !bytes.Equal(out, b) {
				t.Fatalf("re-encoded % x, decoded % x", out, b)
			}
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(byte(3), uint16(2), []byte{3, 4, 0, 1, 0, 2})
	f.Add(byte(1), uint16(9), []byte{1, 2, 0xFF, 1})
	f.Add(byte(6), uint16(1), []byte{6, 0, 1, 0, 3})
	f.Add(byte(16), uint16(1), []byte{0x90, 4})
	f.Fuzz(func(t *testing.T, fc byte, qty uint16, resp []byte) {
		p, err := parsePDU(resp)
		if err != nil {
			return
		}
		req := PDU{Function: FunctionCode(fc), Data: []byte{0, 1, byte(qty >> 8), byte(qty)}}
		var ex *ExceptionError
		check := func(err error) {
			if err != nil && !errors.Is(err, ErrProtocol) && !errors.As(err, &ex) {
				t.Fatalf("error of unexpected kind: %v", err)
			}
		}
		bits, err := DecodeBitsResponse(req, int(qty), p)
		check(err)
		if err == nil && len(bits) != int(qty) {
			t.Fatalf("%d bits for quantity %d", len(bits), qty)
		}
		regs, err := DecodeRegistersResponse(req, int(qty), p)
		check(err)
		if err == nil && len(regs) != int(qty) {
			t.Fatalf("%d registers for quantity %d", len(regs), qty)
		}
		check(DecodeWriteResponse(req, p))
	})
}

func FuzzHandleRequest(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1})
	f.Add([]byte{0, 1, 0, 0, 0, 6, 1, 1, 0, 0, 7, 0xD0})
	f.Add([]byte{0, 1, 0, 0, 0, 11, 1, 16, 0, 0, 0, 2, 4, 0, 1, 0, 2})
	f.Add([]byte{0, 1, 0, 0, 0, 8, 1, 15, 0, 0, 0, 9, 2, 0xFF, 1})
	f.Add([]byte{0, 1, 0, 0, 0, 6, 1, 5, 0, 0, 0x12, 0x34})
	f.Add([]byte{0, 1, 0, 0, 0, 2, 1, 0x2B})
	bank, _ := NewBank(BankSizes{Coils: 100, DiscreteInputs: 100, HoldingRegisters: 100, InputRegisters: 100})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ReadTCPFrame(bytes.NewReader(b))
		if err != nil {
			return // the server closes the connection
		}
		resp := HandleRequest(bank, fr.PDU)
		if resp.Function&^exceptionFlag != fr.PDU.Function&^exceptionFlag {
			t.Fatalf("answered function %d to %d", resp.Function, fr.PDU.Function)
		}
		if resp.Function&exceptionFlag != 0 && len(resp.Data) != 1 {
			t.Fatalf("exception with %d bytes", len(resp.Data))
		}
		if _, err := AppendTCPFrame(nil, TCPFrame{PDU: resp}); err != nil {
			t.Fatalf("response does not fit a frame: %v", err)
		}
	})
}
