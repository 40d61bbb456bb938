package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// UnitID is the unit the server answers as. Requests to another unit get exception
	// "gateway target device failed to respond"; 0 answers every unit, and requests to unit
	// 0 or 255 (Modbus TCP's "this device") are always answered.
	UnitID byte
	// IdleTimeout closes a client connection that sent nothing for that long; 0 means never.
	IdleTimeout time.Duration
	// MaxConns bounds concurrent client connections; 0 means 64.
	MaxConns int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Server serves a Bank over Modbus TCP (and RTU on a given stream, for tests).
type Server struct {
	bank *Bank
	opts ServerOptions
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}

	mu      sync.Mutex
	closers map[io.Closer]struct{} // listeners and connections being served
}

// NewServer returns a server for bank.
func NewServer(bank *Bank, opts ServerOptions) *Server {
	if opts.MaxConns <= 0 {
		opts.MaxConns = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		bank: bank, opts: opts, log: opts.Logger,
		ctx: ctx, cancel: cancel,
		sem:     make(chan struct{}, opts.MaxConns),
		closers: map[io.Closer]struct{}{},
	}
}

// Bank returns the server's data.
func (s *Server) Bank() *Bank { return s.bank }

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("modbus: server closed")

// Serve accepts Modbus TCP connections on l until Close, serving each on its own goroutine.
// It closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	if !s.add(l) {
		_ = l.Close()
		return ErrServerClosed
	}
	defer s.done(l)
	defer l.Close()
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("modbus: accept: %w", err)
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.log.Warn("modbus server refusing connection: too many clients", "remote", conn.RemoteAddr().String(), "max", s.opts.MaxConns)
			_ = conn.Close()
			continue
		}
		if !s.add(conn) {
			<-s.sem
			_ = conn.Close()
			return ErrServerClosed
		}
		go func() {
			defer func() { <-s.sem }()
			defer s.done(conn)
			defer conn.Close()
			s.serveTCP(conn)
		}()
	}
}

// add registers c, to be closed by Close, and one goroutine that will call done(c); false
// when the server is already closed.
func (s *Server) add(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.closers[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) done(c io.Closer) {
	s.mu.Lock()
	delete(s.closers, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Close stops every Serve and ServeRTU, closes all connections and waits for their
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.cancel()
	for c := range s.closers {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) serveTCP(conn net.Conn) {
	log := s.log.With("remote", conn.RemoteAddr().String())
	for {
		if s.opts.IdleTimeout > 0 {
			_ = conn.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		}
		f, err := ReadTCPFrame(conn)
		if err != nil {
			if errors.Is(err, ErrProtocol) {
				log.Warn("modbus server closing connection", "err", err)
			}
			return
		}
		resp, ok := s.handle(f.Unit, f.PDU, true)
		if !ok {
			continue
		}
		out, err := AppendTCPFrame(nil, TCPFrame{Transaction: f.Transaction, Unit: f.Unit, PDU: resp})
		if err != nil {
			log.Error("modbus server encoding response", "err", err)
			return
		}
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

// ServeRTU answers RTU requests read from rw until rw fails, a frame is malformed (the line
// is then out of step) or the server is closed; it closes rw before returning. Requests to
// other addresses are ignored, as on a shared bus.
func (s *Server) ServeRTU(rw io.ReadWriteCloser) error {
	if !s.add(rw) {
		_ = rw.Close()
		return ErrServerClosed
	}
	defer s.done(rw)
	defer rw.Close()
	for {
		f, err := ReadRTURequest(rw)
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrServerClosed
			}
			return err
		}
		if f.Address == 0 {
			// Broadcast: act, never answer.
			_, _ = s.handle(s.opts.UnitID, f.PDU, false)
			continue
		}
		if s.opts.UnitID != 0 && f.Address != s.opts.UnitID {
			continue
		}
		resp, ok := s.handle(f.Address, f.PDU, false)
		if !ok {
			continue
		}
		out, err := AppendRTUFrame(nil, RTUFrame{Address: f.Address, PDU: resp})
		if err != nil {
			return err
		}
		if _, err := rw.Write(out); err != nil {
			return err
		}
	}
}

func exception(f FunctionCode, c ExceptionCode) PDU {
	return PDU{Function: f | exceptionFlag, Data: []byte{byte(c)}}
}

// handle answers one request. ok is false when no answer must be sent.
func (s *Server) handle(unit byte, req PDU, tcp bool) (resp PDU, ok bool) {
	if req.Function&exceptionFlag != 0 {
		// Not a request; an exception to an exception makes no sense. Answer "illegal
		// function" with the flag cleared so a confused peer still gets a reply.
		return exception(req.Function&^exceptionFlag, ExceptionIllegalFunction), true
	}
	if tcp && s.opts.UnitID != 0 && unit != s.opts.UnitID && unit != 0 && unit != 0xFF {
		return exception(req.Function, ExceptionGatewayTargetDeviceFailedToRespond), true
	}
	return HandleRequest(s.bank, req), true
}

// HandleRequest executes one request PDU against bank and returns the response PDU: the
// normal response, or an exception for an unsupported function (1), a malformed request or
// out-of-range quantity (3) or addresses outside the bank (2).
func HandleRequest(bank *Bank, req PDU) PDU {
	f, d := req.Function, req.Data
	switch f {
	case FuncReadCoils, FuncReadDiscreteInputs, FuncReadHoldingRegisters, FuncReadInputRegisters:
		if len(d) != 4 {
			return exception(f, ExceptionIllegalDataValue)
		}
		addr, qty := int(binary.BigEndian.Uint16(d)), int(binary.BigEndian.Uint16(d[2:]))
		t, limit := tableOf(f), MaxReadRegisters
		if t.IsBits() {
			limit = MaxReadBits
		}
		if qty < 1 || qty > limit {
			return exception(f, ExceptionIllegalDataValue)
		}
		if addr+qty > bank.size(t) {
			return exception(f, ExceptionIllegalDataAddress)
		}
		if t.IsBits() {
			v, err := bank.Bits(t, addr, qty)
			if err != nil {
				return exception(f, ExceptionIllegalDataAddress)
			}
			p := packBits(v)
			return PDU{Function: f, Data: append([]byte{byte(len(p))}, p...)}
		}
		v, err := bank.Registers(t, addr, qty)
		if err != nil {
			return exception(f, ExceptionIllegalDataAddress)
		}
		out := make([]byte, 1, 1+2*len(v))
		out[0] = byte(2 * len(v))
		for _, r := range v {
			out = binary.BigEndian.AppendUint16(out, r)
		}
		return PDU{Function: f, Data: out}
	case FuncWriteSingleCoil, FuncWriteSingleRegister:
		if len(d) != 4 {
			return exception(f, ExceptionIllegalDataValue)
		}
		addr, v := int(binary.BigEndian.Uint16(d)), binary.BigEndian.Uint16(d[2:])
		var err error
		if f == FuncWriteSingleCoil {
			if v != coilOn && v != coilOff {
				return exception(f, ExceptionIllegalDataValue)
			}
			err = bank.SetBits(Coils, addr, v == coilOn)
		} else {
			err = bank.SetRegisters(HoldingRegisters, addr, v)
		}
		if err != nil {
			return exception(f, ExceptionIllegalDataAddress)
		}
		return PDU{Function: f, Data: append([]byte(nil), d...)}
	case FuncWriteMultipleCoils, FuncWriteMultipleRegisters:
		if len(d) < 5 {
			return exception(f, ExceptionIllegalDataValue)
		}
		addr, qty, n := int(binary.BigEndian.Uint16(d)), int(binary.BigEndian.Uint16(d[2:])), int(d[4])
		var want, limit int
		if f == FuncWriteMultipleCoils {
			want, limit = (qty+7)/8, MaxWriteBits
		} else {
			want, limit = 2*qty, MaxWriteRegisters
		}
		if qty < 1 || qty > limit || n != want || len(d) != 5+n {
			return exception(f, ExceptionIllegalDataValue)
		}
		var err error
		if f == FuncWriteMultipleCoils {
			err = bank.SetBits(Coils, addr, unpackBits(d[5:], qty)...)
		} else {
			v := make([]uint16, qty)
			for i := range v {
				v[i] = binary.BigEndian.Uint16(d[5+2*i:])
			}
			err = bank.SetRegisters(HoldingRegisters, addr, v...)
		}
		if err != nil {
			return exception(f, ExceptionIllegalDataAddress)
		}
		return PDU{Function: f, Data: append([]byte(nil), d[:4]...)}
	}
	return exception(f, ExceptionIllegalFunction)
}

func tableOf(f FunctionCode) Table {
	switch f {
	case FuncReadCoils:
		return Coils
	case FuncReadDiscreteInputs:
		return DiscreteInputs
	case FuncReadHoldingRegisters:
		return HoldingRegisters
	}
	return InputRegisters
}
