package modbus

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Modbus TCP: a 7-byte MBAP header (transaction id, protocol id 0, length, unit id) then the
// PDU. The length counts the unit id and the PDU.
const (
	mbapHeaderSize = 7
	// maxMBAPLength is the largest length field: unit id + the largest PDU.
	maxMBAPLength = 1 + MaxPDUSize
	// MaxTCPFrameSize is the largest Modbus TCP frame.
	MaxTCPFrameSize = mbapHeaderSize - 1 + maxMBAPLength
)

// TCPFrame is one Modbus TCP application data unit.
type TCPFrame struct {
	Transaction uint16
	Unit        byte
	PDU         PDU
}

// AppendTCPFrame appends f's wire form to b.
func AppendTCPFrame(b []byte, f TCPFrame) ([]byte, error) {
	if len(f.PDU.Data)+1 > MaxPDUSize {
		return nil, fmt.Errorf("modbus: PDU of %d bytes exceeds %d", len(f.PDU.Data)+1, MaxPDUSize)
	}
	b = binary.BigEndian.AppendUint16(b, f.Transaction)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(2+len(f.PDU.Data)))
	b = append(b, f.Unit)
	return appendPDU(b, f.PDU), nil
}

// ReadTCPFrame reads one Modbus TCP frame from r. It reads at most MaxTCPFrameSize bytes and
// returns an error wrapping ErrProtocol for a header no Modbus peer sends (the stream can
// no longer be trusted: close it), or the reader's error.
func ReadTCPFrame(r io.Reader) (TCPFrame, error) {
	var hdr [mbapHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return TCPFrame{}, err
	}
	if p := binary.BigEndian.Uint16(hdr[2:]); p != 0 {
		return TCPFrame{}, protoErrorf("MBAP protocol id %d, want 0", p)
	}
	n := int(binary.BigEndian.Uint16(hdr[4:]))
	if n < 2 || n > maxMBAPLength {
		return TCPFrame{}, protoErrorf("MBAP length %d out of range 2..%d", n, maxMBAPLength)
	}
	body := make([]byte, n-1)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return TCPFrame{}, err
	}
	pdu, err := parsePDU(body)
	if err != nil {
		return TCPFrame{}, err
	}
	return TCPFrame{Transaction: binary.BigEndian.Uint16(hdr[0:]), Unit: hdr[6], PDU: pdu}, nil
}

// DecodeTCPFrame decodes exactly one Modbus TCP frame held in b.
func DecodeTCPFrame(b []byte) (TCPFrame, error) {
	if len(b) > MaxTCPFrameSize {
		return TCPFrame{}, protoErrorf("frame of %d bytes exceeds %d", len(b), MaxTCPFrameSize)
	}
	r := &sliceReader{b: b}
	f, err := ReadTCPFrame(r)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return TCPFrame{}, protoErrorf("truncated frame of %d bytes", len(b))
		}
		return TCPFrame{}, err
	}
	if len(r.b) != 0 {
		return TCPFrame{}, protoErrorf("%d bytes after the frame", len(r.b))
	}
	return f, nil
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// RTU: address, PDU, CRC-16/MODBUS (low byte first). At most 256 bytes.
const (
	// MaxRTUFrameSize is the largest RTU frame.
	MaxRTUFrameSize = 1 + MaxPDUSize + 2
	minRTUFrameSize = 4
)

// RTUFrame is one Modbus RTU application data unit.
type RTUFrame struct {
	Address byte
	PDU     PDU
}

// CRC16 is CRC-16/MODBUS (reflected polynomial 0xA001, initial value 0xFFFF).
func CRC16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// AppendRTUFrame appends f's wire form to b.
func AppendRTUFrame(b []byte, f RTUFrame) ([]byte, error) {
	if len(f.PDU.Data)+1 > MaxPDUSize {
		return nil, fmt.Errorf("modbus: PDU of %d bytes exceeds %d", len(f.PDU.Data)+1, MaxPDUSize)
	}
	start := len(b)
	b = append(b, f.Address)
	b = appendPDU(b, f.PDU)
	return binary.LittleEndian.AppendUint16(b, CRC16(b[start:])), nil
}

// DecodeRTUFrame decodes exactly one RTU frame held in b and checks its CRC.
func DecodeRTUFrame(b []byte) (RTUFrame, error) {
	if len(b) < minRTUFrameSize || len(b) > MaxRTUFrameSize {
		return RTUFrame{}, protoErrorf("RTU frame of %d bytes out of range %d..%d", len(b), minRTUFrameSize, MaxRTUFrameSize)
	}
	body := b[:len(b)-2]
	if got, want := binary.LittleEndian.Uint16(b[len(b)-2:]), CRC16(body); got != want {
		return RTUFrame{}, protoErrorf("RTU CRC %04x, want %04x", got, want)
	}
	pdu, err := parsePDU(body[1:])
	if err != nil {
		return RTUFrame{}, err
	}
	return RTUFrame{Address: body[0], PDU: pdu}, nil
}

// RTU frames carry no length: the receiver tells where a frame ends from its function code.
// These return how many bytes (CRC included) are still to read after the address, the
// function code and whatever count read (count reads up to and including a byte count).

// rtuResponseRest is for responses (what a client reads).
func rtuResponseRest(f FunctionCode, count func() (byte, error)) (int, error) {
	switch {
	case f&exceptionFlag != 0:
		return 1 + 2, nil
	case isBitRead(f) || isRegisterRead(f):
		n, err := count()
		if err != nil {
			return 0, err
		}
		return int(n) + 2, nil
	case f == FuncWriteSingleCoil, f == FuncWriteSingleRegister,
		f == FuncWriteMultipleCoils, f == FuncWriteMultipleRegisters:
		return 4 + 2, nil
	}
	return 0, protoErrorf("RTU response with unknown function %d", byte(f))
}

// rtuRequestRest is for requests (what a server reads).
func rtuRequestRest(f FunctionCode, count func() (byte, error)) (int, error) {
	switch f {
	case FuncReadCoils, FuncReadDiscreteInputs, FuncReadHoldingRegisters, FuncReadInputRegisters,
		FuncWriteSingleCoil, FuncWriteSingleRegister:
		return 4 + 2, nil
	case FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
		n, err := count()
		if err != nil {
			return 0, err
		}
		return int(n) + 2, nil
	}
	// The length of an unknown request cannot be known: the line is out of step.
	return 0, protoErrorf("RTU request with unsupported function %d", byte(f))
}

// readRTU reads one RTU frame from r using rest to find its length. It never reads more than
// MaxRTUFrameSize bytes.
func readRTU(r io.Reader, rest func(FunctionCode, func() (byte, error)) (int, error)) (RTUFrame, error) {
	buf := make([]byte, 2, MaxRTUFrameSize)
	if _, err := io.ReadFull(r, buf); err != nil {
		return RTUFrame{}, err
	}
	// Functions 15 and 16 have 4 bytes of address and quantity before their byte count.
	f := FunctionCode(buf[1])
	count := func() (byte, error) {
		pre := 1
		if f == FuncWriteMultipleCoils || f == FuncWriteMultipleRegisters {
			pre = 5
		}
		buf = buf[:2+pre]
		if _, err := io.ReadFull(r, buf[2:]); err != nil {
			return 0, unexpected(err)
		}
		return buf[len(buf)-1], nil
	}
	n, err := rest(f, count)
	if err != nil {
		return RTUFrame{}, err
	}
	// rest counts what follows the bytes read so far (count may have read some).
	total := len(buf) + n
	if total > MaxRTUFrameSize {
		return RTUFrame{}, protoErrorf("RTU frame of %d bytes exceeds %d", total, MaxRTUFrameSize)
	}
	start := len(buf)
	buf = buf[:total]
	if _, err := io.ReadFull(r, buf[start:]); err != nil {
		return RTUFrame{}, unexpected(err)
	}
	return DecodeRTUFrame(buf)
}

// ReadRTUResponse reads one RTU response frame from r.
func ReadRTUResponse(r io.Reader) (RTUFrame, error) { return readRTU(r, rtuResponseRest) }

// ReadRTURequest reads one RTU request frame from r.
func ReadRTURequest(r io.Reader) (RTUFrame, error) { return readRTU(r, rtuRequestRest) }

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
