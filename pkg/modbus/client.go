package modbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Framing selects how PDUs travel on a connection.
type Framing int

const (
	// FramingTCP is Modbus TCP (MBAP header).
	FramingTCP Framing = iota
	// FramingRTU is Modbus RTU (address + PDU + CRC).
	FramingRTU
)

func (f Framing) String() string {
	if f == FramingRTU {
		return "rtu"
	}
	return "tcp"
}

// Client defaults.
const (
	DefaultTimeout     = time.Second
	DefaultDialTimeout = 5 * time.Second
	DefaultRetries     = 2
	DefaultUnitID      = 1
)

// maxStaleFrames bounds how many replies to older transactions one request discards.
const maxStaleFrames = 16

// Options configure a Client. Zero values take the defaults above.
type Options struct {
	// UnitID addresses the device (RTU address; TCP unit id, for gateways). 0 means
	// DefaultUnitID; on RTU 0 would be the broadcast address, which gets no reply.
	UnitID byte
	// Timeout bounds one attempt of a request (send and reply).
	Timeout time.Duration
	// DialTimeout bounds opening the connection.
	DialTimeout time.Duration
	// Retries is how many more attempts a request gets after an I/O or protocol error; an
	// exception response is final. Negative means none.
	Retries int
	// Logger names the peer; nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.UnitID == 0 {
		o.UnitID = DefaultUnitID
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	} else if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// DialFunc opens a connection to the device. A returned value that has SetDeadline (a
// net.Conn, a pollable *os.File such as a tty) gets per-request deadlines; anything else is
// closed when a request times out.
type DialFunc func(ctx context.Context) (io.ReadWriteCloser, error)

type deadliner interface{ SetDeadline(time.Time) error }

// Client talks to one Modbus device. It is safe for concurrent use; requests are sent one at
// a time. After an I/O or protocol error it drops the connection and opens a new one for
// the next attempt.
type Client struct {
	dial    DialFunc
	framing Framing
	opts    Options
	log     *slog.Logger

	mu     sync.Mutex // serializes requests and guards the fields below
	conn   io.ReadWriteCloser
	tid    uint16
	closed bool
}

// NewClient returns a client that opens its connection with dial on first use.
func NewClient(dial DialFunc, framing Framing, opts Options) *Client {
	opts = opts.withDefaults()
	return &Client{dial: dial, framing: framing, opts: opts, log: opts.Logger}
}

// NewTCPClient returns a Modbus TCP client for addr (host:port); it connects on first use.
func NewTCPClient(addr string, opts Options) *Client {
	// Not opts = opts.withDefaults(): NewClient applies them, and twice would turn
	// Retries -1 (none) into 0 and then into DefaultRetries.
	d := net.Dialer{Timeout: opts.withDefaults().DialTimeout}
	c := NewClient(func(ctx context.Context) (io.ReadWriteCloser, error) {
		return d.DialContext(ctx, "tcp", addr)
	}, FramingTCP, opts)
	c.log = c.opts.Logger.With("modbus", addr)
	return c
}

// Dial connects to a Modbus TCP device at addr and returns the client.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	c := NewTCPClient(addr, opts)
	if err := c.Connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Connect opens the connection now, if it is not open, instead of at the first request.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	return c.connect(ctx)
}

// NewRTUClient returns a Modbus RTU client on the serial device at path. Each time it opens
// the device it puts the line in raw mode and applies line's non-zero settings (Linux only;
// elsewhere the OS's settings are used and non-zero ones are logged as not applied). It
// fails at the first request (or Connect) when line is invalid; see SerialConfig.Validate.
func NewRTUClient(path string, line SerialConfig, opts Options) *Client {
	c := NewClient(nil, FramingRTU, opts) // NewClient applies the defaults, once
	c.log = c.opts.Logger.With("modbus", path)
	c.dial = func(context.Context) (io.ReadWriteCloser, error) {
		return openSerial(path, line, c.log)
	}
	return c
}

// SerialConfig is a serial line's settings. A zero field leaves that setting as the OS has it.
type SerialConfig struct {
	// BaudRate is one of StandardBaudRates.
	BaudRate int
	// DataBits is 5..8.
	DataBits int
	Parity   Parity
	// StopBits is 1 or 2.
	StopBits int
}

// IsZero reports whether c leaves every setting as the OS has it.
func (c SerialConfig) IsZero() bool { return c == SerialConfig{} }

// StandardBaudRates are the baud rates SerialConfig accepts, ascending.
var StandardBaudRates = []int{1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400}

// Validate checks every non-zero setting.
func (c SerialConfig) Validate() error {
	if c.BaudRate != 0 && !slices.Contains(StandardBaudRates, c.BaudRate) {
		return fmt.Errorf("baud rate %d is not one of %v", c.BaudRate, StandardBaudRates)
	}
	if c.DataBits != 0 && (c.DataBits < 5 || c.DataBits > 8) {
		return fmt.Errorf("data bits %d out of range 5..8", c.DataBits)
	}
	if c.Parity > ParityOdd {
		return fmt.Errorf("unknown parity %d", c.Parity)
	}
	if c.StopBits != 0 && c.StopBits != 1 && c.StopBits != 2 {
		return fmt.Errorf("stop bits %d, want 1 or 2", c.StopBits)
	}
	return nil
}

// Parity is a serial line's parity setting.
type Parity byte

const (
	// ParityUnset leaves the line's parity as the OS has it.
	ParityUnset Parity = iota
	ParityNone
	ParityEven
	ParityOdd
)

func (p Parity) String() string {
	switch p {
	case ParityUnset:
		return "unset"
	case ParityNone:
		return "none"
	case ParityEven:
		return "even"
	case ParityOdd:
		return "odd"
	}
	return fmt.Sprintf("Parity(%d)", byte(p))
}

// ParseParity reads a parity as KubeEdge device configs spell it: none, even or odd, or N, E
// or O, in any case; "" is ParityUnset.
func ParseParity(s string) (Parity, error) {
	switch strings.ToLower(s) {
	case "":
		return ParityUnset, nil
	case "none", "n":
		return ParityNone, nil
	case "even", "e":
		return ParityEven, nil
	case "odd", "o":
		return ParityOdd, nil
	}
	return ParityUnset, fmt.Errorf("parity %q is not none, even or odd", s)
}

// Close closes the connection; later requests fail.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.dropLocked()
}

// ErrClosed is returned by requests on a closed client.
var ErrClosed = errors.New("modbus: client closed")

func (c *Client) dropLocked() error {
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

func (c *Client) connect(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	conn, err := c.dial(dctx)
	if err != nil {
		return fmt.Errorf("modbus: connect: %w", err)
	}
	c.conn = conn
	return nil
}

// Send sends one request PDU and returns the response PDU (possibly an exception response,
// which it does not interpret). It retries I/O and protocol errors per Options.
func (c *Client) Send(ctx context.Context, req PDU) (PDU, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	for attempt := 0; attempt <= c.opts.Retries; attempt++ {
		if c.closed {
			return PDU{}, ErrClosed
		}
		if cerr := ctx.Err(); cerr != nil {
			if err == nil {
				err = cerr
			}
			return PDU{}, err
		}
		var resp PDU
		resp, err = c.attempt(ctx, req)
		if err == nil {
			return resp, nil
		}
		c.log.Debug("modbus request failed", "function", req.Function.String(), "attempt", attempt+1, "err", err)
		_ = c.dropLocked()
	}
	return PDU{}, err
}

// attempt performs one exchange on the current connection, connecting if needed.
func (c *Client) attempt(ctx context.Context, req PDU) (PDU, error) {
	if err := c.connect(ctx); err != nil {
		return PDU{}, err
	}
	conn := c.conn
	deadline := time.Now().Add(c.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// Interrupt a blocked read when the context ends or, without deadlines, at the deadline.
	var stop func() bool
	if dl, ok := conn.(deadliner); ok {
		if err := dl.SetDeadline(deadline); err != nil {
			return PDU{}, fmt.Errorf("modbus: set deadline: %w", err)
		}
		stop = context.AfterFunc(ctx, func() { _ = dl.SetDeadline(time.Unix(1, 0)) })
	} else {
		t := time.AfterFunc(time.Until(deadline), func() { _ = conn.Close() })
		unhook := context.AfterFunc(ctx, func() { _ = conn.Close() })
		stop = func() bool { unhook(); return t.Stop() }
	}
	defer stop()
	var resp PDU
	var err error
	if c.framing == FramingRTU {
		resp, err = c.exchangeRTU(conn, req)
	} else {
		resp, err = c.exchangeTCP(conn, req)
	}
	if err != nil && ctx.Err() != nil {
		return PDU{}, fmt.Errorf("modbus: %s: %w", req.Function, ctx.Err())
	}
	return resp, err
}

func (c *Client) exchangeTCP(conn io.ReadWriter, req PDU) (PDU, error) {
	c.tid++
	tid := c.tid
	frame, err := AppendTCPFrame(nil, TCPFrame{Transaction: tid, Unit: c.opts.UnitID, PDU: req})
	if err != nil {
		return PDU{}, err
	}
	if _, err := conn.Write(frame); err != nil {
		return PDU{}, fmt.Errorf("modbus: write %s: %w", req.Function, err)
	}
	for range maxStaleFrames {
		f, err := ReadTCPFrame(conn)
		if err != nil {
			return PDU{}, fmt.Errorf("modbus: read %s response: %w", req.Function, err)
		}
		if f.Transaction != tid {
			// A late reply to an attempt that timed out: not ours.
			c.log.Debug("modbus discarding stale reply", "transaction", f.Transaction, "want", tid)
			continue
		}
		if f.Unit != c.opts.UnitID {
			return PDU{}, protoErrorf("reply from unit %d, want %d", f.Unit, c.opts.UnitID)
		}
		return f.PDU, nil
	}
	return PDU{}, protoErrorf("no reply with transaction %d among %d frames", tid, maxStaleFrames)
}

func (c *Client) exchangeRTU(conn io.ReadWriter, req PDU) (PDU, error) {
	frame, err := AppendRTUFrame(nil, RTUFrame{Address: c.opts.UnitID, PDU: req})
	if err != nil {
		return PDU{}, err
	}
	if _, err := conn.Write(frame); err != nil {
		return PDU{}, fmt.Errorf("modbus: write %s: %w", req.Function, err)
	}
	f, err := ReadRTUResponse(conn)
	if err != nil {
		return PDU{}, fmt.Errorf("modbus: read %s response: %w", req.Function, err)
	}
	if f.Address != c.opts.UnitID {
		return PDU{}, protoErrorf("reply from address %d, want %d", f.Address, c.opts.UnitID)
	}
	return f.PDU, nil
}

func (c *Client) readBits(ctx context.Context, f FunctionCode, addr uint16, qty int) ([]bool, error) {
	req, err := ReadRequest(f, addr, qty)
	if err != nil {
		return nil, err
	}
	resp, err := c.Send(ctx, req)
	if err != nil {
		return nil, err
	}
	return DecodeBitsResponse(req, qty, resp)
}

func (c *Client) readRegisters(ctx context.Context, f FunctionCode, addr uint16, qty int) ([]uint16, error) {
	req, err := ReadRequest(f, addr, qty)
	if err != nil {
		return nil, err
	}
	resp, err := c.Send(ctx, req)
	if err != nil {
		return nil, err
	}
	return DecodeRegistersResponse(req, qty, resp)
}

func (c *Client) write(ctx context.Context, req PDU) error {
	resp, err := c.Send(ctx, req)
	if err != nil {
		return err
	}
	return DecodeWriteResponse(req, resp)
}

// ReadCoils reads qty coils from addr (function 1).
func (c *Client) ReadCoils(ctx context.Context, addr uint16, qty int) ([]bool, error) {
	return c.readBits(ctx, FuncReadCoils, addr, qty)
}

// ReadDiscreteInputs reads qty discrete inputs from addr (function 2).
func (c *Client) ReadDiscreteInputs(ctx context.Context, addr uint16, qty int) ([]bool, error) {
	return c.readBits(ctx, FuncReadDiscreteInputs, addr, qty)
}

// ReadHoldingRegisters reads qty holding registers from addr (function 3).
func (c *Client) ReadHoldingRegisters(ctx context.Context, addr uint16, qty int) ([]uint16, error) {
	return c.readRegisters(ctx, FuncReadHoldingRegisters, addr, qty)
}

// ReadInputRegisters reads qty input registers from addr (function 4).
func (c *Client) ReadInputRegisters(ctx context.Context, addr uint16, qty int) ([]uint16, error) {
	return c.readRegisters(ctx, FuncReadInputRegisters, addr, qty)
}

// WriteSingleCoil sets one coil (function 5).
func (c *Client) WriteSingleCoil(ctx context.Context, addr uint16, on bool) error {
	return c.write(ctx, WriteSingleCoilRequest(addr, on))
}

// WriteSingleRegister sets one holding register (function 6).
func (c *Client) WriteSingleRegister(ctx context.Context, addr, value uint16) error {
	return c.write(ctx, WriteSingleRegisterRequest(addr, value))
}

// WriteMultipleCoils sets consecutive coils from addr (function 15).
func (c *Client) WriteMultipleCoils(ctx context.Context, addr uint16, values []bool) error {
	req, err := WriteMultipleCoilsRequest(addr, values)
	if err != nil {
		return err
	}
	return c.write(ctx, req)
}

// WriteMultipleRegisters sets consecutive holding registers from addr (function 16).
func (c *Client) WriteMultipleRegisters(ctx context.Context, addr uint16, values []uint16) error {
	req, err := WriteMultipleRegistersRequest(addr, values)
	if err != nil {
		return err
	}
	return c.write(ctx, req)
}
