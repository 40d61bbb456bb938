package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// FunctionCode is the first byte of a PDU.
type FunctionCode byte

// The function codes this package speaks (Modbus Application Protocol v1.1b3, §6).
const (
	FuncReadCoils              FunctionCode = 1
	FuncReadDiscreteInputs     FunctionCode = 2
	FuncReadHoldingRegisters   FunctionCode = 3
	FuncReadInputRegisters     FunctionCode = 4
	FuncWriteSingleCoil        FunctionCode = 5
	FuncWriteSingleRegister    FunctionCode = 6
	FuncWriteMultipleCoils     FunctionCode = 15
	FuncWriteMultipleRegisters FunctionCode = 16
)

// exceptionFlag is set in the function code of an exception response.
const exceptionFlag = 0x80

// Quantity limits of the specification: they keep every PDU within MaxPDUSize.
const (
	MaxReadBits       = 2000
	MaxReadRegisters  = 125
	MaxWriteBits      = 1968
	MaxWriteRegisters = 123
	// MaxPDUSize is the largest PDU (function code + data) the specification allows: a
	// serial ADU is at most 256 bytes, minus address and CRC.
	MaxPDUSize = 253
)

// Coil values on the wire of write single coil.
const (
	coilOn  = 0xFF00
	coilOff = 0x0000
)

func (f FunctionCode) String() string {
	switch f {
	case FuncReadCoils:
		return "ReadCoils"
	case FuncReadDiscreteInputs:
		return "ReadDiscreteInputs"
	case FuncReadHoldingRegisters:
		return "ReadHoldingRegisters"
	case FuncReadInputRegisters:
		return "ReadInputRegisters"
	case FuncWriteSingleCoil:
		return "WriteSingleCoil"
	case FuncWriteSingleRegister:
		return "WriteSingleRegister"
	case FuncWriteMultipleCoils:
		return "WriteMultipleCoils"
	case FuncWriteMultipleRegisters:
		return "WriteMultipleRegisters"
	}
	return fmt.Sprintf("function(%d)", byte(f))
}

// ExceptionCode is the reason a server gives in an exception response.
type ExceptionCode byte

// The standard exception codes.
const (
	ExceptionIllegalFunction                    ExceptionCode = 0x01
	ExceptionIllegalDataAddress                 ExceptionCode = 0x02
	ExceptionIllegalDataValue                   ExceptionCode = 0x03
	ExceptionServerDeviceFailure                ExceptionCode = 0x04
	ExceptionAcknowledge                        ExceptionCode = 0x05
	ExceptionServerDeviceBusy                   ExceptionCode = 0x06
	ExceptionMemoryParityError                  ExceptionCode = 0x08
	ExceptionGatewayPathUnavailable             ExceptionCode = 0x0A
	ExceptionGatewayTargetDeviceFailedToRespond ExceptionCode = 0x0B
)

func (c ExceptionCode) String() string {
	switch c {
	case ExceptionIllegalFunction:
		return "illegal function"
	case ExceptionIllegalDataAddress:
		return "illegal data address"
	case ExceptionIllegalDataValue:
		return "illegal data value"
	case ExceptionServerDeviceFailure:
		return "server device failure"
	case ExceptionAcknowledge:
		return "acknowledge"
	case ExceptionServerDeviceBusy:
		return "server device busy"
	case ExceptionMemoryParityError:
		return "memory parity error"
	case ExceptionGatewayPathUnavailable:
		return "gateway path unavailable"
	case ExceptionGatewayTargetDeviceFailedToRespond:
		return "gateway target device failed to respond"
	}
	return fmt.Sprintf("exception code %d", byte(c))
}

// ExceptionError is a Modbus exception response: the device understood the request and
// refused it. It is final; the client does not retry it.
type ExceptionError struct {
	Function FunctionCode
	Code     ExceptionCode
}

func (e *ExceptionError) Error() string {
	return fmt.Sprintf("modbus exception %d (%s) for %s", byte(e.Code), e.Code, e.Function)
}

// ErrProtocol marks a response that does not follow the protocol (wrong length, wrong echo,
// bad CRC, ...). The client treats the connection as out of step and reconnects.
var ErrProtocol = errors.New("modbus protocol error")

func protoErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// PDU is a protocol data unit: a function code and its data, without addressing or checksum.
type PDU struct {
	Function FunctionCode
	Data     []byte
}

// appendPDU appends p's wire form to b.
func appendPDU(b []byte, p PDU) []byte {
	b = append(b, byte(p.Function))
	return append(b, p.Data...)
}

// parsePDU splits a wire PDU; it does not validate the function's data.
func parsePDU(b []byte) (PDU, error) {
	if len(b) < 1 {
		return PDU{}, protoErrorf("empty PDU")
	}
	if len(b) > MaxPDUSize {
		return PDU{}, protoErrorf("PDU of %d bytes exceeds %d", len(b), MaxPDUSize)
	}
	return PDU{Function: FunctionCode(b[0]), Data: b[1:]}, nil
}

func u16(hi, lo uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, hi), lo)
}

func isBitRead(f FunctionCode) bool { return f == FuncReadCoils || f == FuncReadDiscreteInputs }

func isRegisterRead(f FunctionCode) bool {
	return f == FuncReadHoldingRegisters || f == FuncReadInputRegisters
}

// checkRange validates a quantity against its limit and that address+quantity stays within
// the 16-bit address space.
func checkRange(what string, addr uint16, qty, limit int) error {
	if qty < 1 || qty > limit {
		return fmt.Errorf("modbus: %s quantity %d out of range 1..%d", what, qty, limit)
	}
	if int(addr)+qty > 1<<16 {
		return fmt.Errorf("modbus: %s at %d+%d exceeds the address space", what, addr, qty)
	}
	return nil
}

// ReadRequest builds the request of a read function (1-4).
func ReadRequest(f FunctionCode, addr uint16, qty int) (PDU, error) {
	switch {
	case isBitRead(f):
		if err := checkRange("read bits", addr, qty, MaxReadBits); err != nil {
			return PDU{}, err
		}
	case isRegisterRead(f):
		if err := checkRange("read registers", addr, qty, MaxReadRegisters); err != nil {
			return PDU{}, err
		}
	default:
		return PDU{}, fmt.Errorf("modbus: %s is not a read function", f)
	}
	return PDU{Function: f, Data: u16(addr, uint16(qty))}, nil
}

// WriteSingleCoilRequest builds a function 5 request.
func WriteSingleCoilRequest(addr uint16, on bool) PDU {
	v := uint16(coilOff)
	if on {
		v = coilOn
	}
	return PDU{Function: FuncWriteSingleCoil, Data: u16(addr, v)}
}

// WriteSingleRegisterRequest builds a function 6 request.
func WriteSingleRegisterRequest(addr, value uint16) PDU {
	return PDU{Function: FuncWriteSingleRegister, Data: u16(addr, value)}
}

// WriteMultipleCoilsRequest builds a function 15 request.
func WriteMultipleCoilsRequest(addr uint16, values []bool) (PDU, error) {
	if err := checkRange("write coils", addr, len(values), MaxWriteBits); err != nil {
		return PDU{}, err
	}
	packed := packBits(values)
	d := u16(addr, uint16(len(values)))
	d = append(d, byte(len(packed)))
	return PDU{Function: FuncWriteMultipleCoils, Data: append(d, packed...)}, nil
}

// WriteMultipleRegistersRequest builds a function 16 request.
func WriteMultipleRegistersRequest(addr uint16, values []uint16) (PDU, error) {
	if err := checkRange("write registers", addr, len(values), MaxWriteRegisters); err != nil {
		return PDU{}, err
	}
	d := u16(addr, uint16(len(values)))
	d = append(d, byte(2*len(values)))
	for _, v := range values {
		d = binary.BigEndian.AppendUint16(d, v)
	}
	return PDU{Function: FuncWriteMultipleRegisters, Data: d}, nil
}

// packBits packs bits LSB first, as coils travel on the wire.
func packBits(bits []bool) []byte {
	out := make([]byte, (len(bits)+7)/8)
	for i, b := range bits {
		if b {
			out[i/8] |= 1 << (i % 8)
		}
	}
	return out
}

func unpackBits(b []byte, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = b[i/8]&(1<<(i%8)) != 0
	}
	return out
}

// checkException returns the *ExceptionError a response carries, or a protocol error when
// the response answers another function.
func checkException(req, resp PDU) error {
	if resp.Function == req.Function|exceptionFlag {
		if len(resp.Data) != 1 {
			return protoErrorf("exception response of %d data bytes", len(resp.Data))
		}
		return &ExceptionError{Function: req.Function, Code: ExceptionCode(resp.Data[0])}
	}
	if resp.Function != req.Function {
		return protoErrorf("response function %d to request %s", byte(resp.Function), req.Function)
	}
	return nil
}

// DecodeBitsResponse decodes the response to a read bits request for qty bits.
func DecodeBitsResponse(req PDU, qty int, resp PDU) ([]bool, error) {
	if err := checkException(req, resp); err != nil {
		return nil, err
	}
	want := (qty + 7) / 8
	if len(resp.Data) < 1 || int(resp.Data[0]) != want || len(resp.Data) != 1+want {
		return nil, protoErrorf("%s response of %d bytes for %d bits", req.Function, len(resp.Data), qty)
	}
	return unpackBits(resp.Data[1:], qty), nil
}

// DecodeRegistersResponse decodes the response to a read registers request for qty registers.
func DecodeRegistersResponse(req PDU, qty int, resp PDU) ([]uint16, error) {
	if err := checkException(req, resp); err != nil {
		return nil, err
	}
	if len(resp.Data) < 1 || int(resp.Data[0]) != 2*qty || len(resp.Data) != 1+2*qty {
		return nil, protoErrorf("%s response of %d bytes for %d registers", req.Function, len(resp.Data), qty)
	}
	out := make([]uint16, qty)
	for i := range out {
		out[i] = binary.BigEndian.Uint16(resp.Data[1+2*i:])
	}
	return out, nil
}

// DecodeWriteResponse checks the response to a write request: functions 5 and 6 echo the
// request; 15 and 16 echo its address and quantity.
func DecodeWriteResponse(req, resp PDU) error {
	if err := checkException(req, resp); err != nil {
		return err
	}
	if len(resp.Data) != 4 || len(req.Data) < 4 || string(resp.Data) != string(req.Data[:4]) {
		return protoErrorf("%s response % x does not echo the request", req.Function, resp.Data)
	}
	return nil
}
