// Package driver is the Modbus driver for the mapper SDK: it connects to Modbus TCP and RTU
// devices and maps each property, through its visitor configData, to a run of coils, discrete
// inputs, holding or input registers. The configData keys are KubeEdge's modbus mapper keys;
// docs/modbus.md lists them.
package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"

	"github.com/skerry-io/skerry/mapper"
	"github.com/skerry-io/skerry/pkg/modbus"
)

// Driver implements mapper.Driver for protocol "modbus".
type Driver struct {
	// Options are the client defaults; a device's configData may override the timeout.
	Options modbus.Options
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

var _ mapper.Driver = (*Driver)(nil)

// Protocol returns "modbus".
func (d *Driver) Protocol() string { return Protocol }

func (d *Driver) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

// Connect parses the device's configData, opens the connection and checks every property's
// visitor. A property with a bad visitor fails its reads and writes, not the whole device.
func (d *Driver) Connect(ctx context.Context, dev *mapper.Device) (mapper.DeviceConn, error) {
	id := dev.Namespace + "/" + dev.Name
	cfg, err := parseDeviceConfig(dev.ProtocolConfig)
	if err != nil {
		return nil, fmt.Errorf("device %s: protocol configData: %w", id, err)
	}
	log := d.logger().With("device", id)
	opts := d.Options
	opts.UnitID = cfg.slaveID
	if cfg.timeout > 0 {
		opts.Timeout = cfg.timeout
	}
	opts.Logger = log
	var c *modbus.Client
	if cfg.serialPort != "" {
		c = modbus.NewRTUClient(cfg.serialPort, cfg.line, opts)
	} else {
		c = modbus.NewTCPClient(cfg.addr, opts)
	}
	if err := c.Connect(ctx); err != nil {
		return nil, fmt.Errorf("device %s: %w", id, err)
	}
	conn := &Conn{id: id, client: c, log: log, visitors: map[string]visitorOrErr{}}
	for _, p := range dev.Properties {
		v, err := parseVisitor(p)
		if err != nil {
			err = fmt.Errorf("device %s property %s: visitor configData: %w", id, p.Name, err)
			log.Error("modbus property unusable", "property", p.Name, "err", err)
		}
		conn.visitors[p.Name] = visitorOrErr{v, err}
	}
	return conn, nil
}

type visitorOrErr struct {
	v   visitor
	err error
}

// Conn is the connection to one Modbus device.
type Conn struct {
	id     string
	client *modbus.Client
	log    *slog.Logger

	mu       sync.Mutex
	visitors map[string]visitorOrErr
}

func (c *Conn) visitor(p *mapper.Property) (visitor, error) {
	c.mu.Lock()
	ve, ok := c.visitors[p.Name]
	c.mu.Unlock()
	if !ok {
		// A property the device had no visitor for at Connect: parse it now.
		v, err := parseVisitor(p)
		if err != nil {
			err = fmt.Errorf("device %s property %s: visitor configData: %w", c.id, p.Name, err)
		}
		ve = visitorOrErr{v, err}
		c.mu.Lock()
		c.visitors[p.Name] = ve
		c.mu.Unlock()
	}
	return ve.v, ve.err
}

// Read reads a property's registers or bits and converts them to the property's type.
func (c *Conn) Read(ctx context.Context, p *mapper.Property) (mapper.Value, error) {
	v, err := c.visitor(p)
	if err != nil {
		return mapper.Value{}, err
	}
	n := v.codec.Size()
	var raw any
	switch v.table {
	case modbus.Coils, modbus.DiscreteInputs:
		var bits []bool
		if v.table == modbus.Coils {
			bits, err = c.client.ReadCoils(ctx, v.offset, n)
		} else {
			bits, err = c.client.ReadDiscreteInputs(ctx, v.offset, n)
		}
		if err == nil {
			raw, err = v.codec.DecodeBits(bits)
		}
	default:
		var regs []uint16
		if v.table == modbus.HoldingRegisters {
			regs, err = c.client.ReadHoldingRegisters(ctx, v.offset, n)
		} else {
			regs, err = c.client.ReadInputRegisters(ctx, v.offset, n)
		}
		if err == nil {
			raw, err = v.codec.DecodeRegisters(regs)
		}
	}
	if err != nil {
		return mapper.Value{}, fmt.Errorf("device %s property %s: read %s %d: %w", c.id, p.Name, v.table, v.offset, err)
	}
	val, err := toValue(p.Type, raw)
	if err != nil {
		return mapper.Value{}, fmt.Errorf("device %s property %s: %w", c.id, p.Name, err)
	}
	return val, nil
}

// Write converts a value and writes it to the property's coils or holding registers.
func (c *Conn) Write(ctx context.Context, p *mapper.Property, val mapper.Value) error {
	v, err := c.visitor(p)
	if err != nil {
		return err
	}
	if v.table != modbus.Coils && v.table != modbus.HoldingRegisters {
		return fmt.Errorf("device %s property %s: %s are read-only", c.id, p.Name, v.table)
	}
	in, err := fromValue(val, v.codec)
	if err != nil {
		return fmt.Errorf("device %s property %s: %w", c.id, p.Name, err)
	}
	if v.table == modbus.Coils {
		var bits []bool
		if bits, err = v.codec.EncodeBits(in); err == nil {
			if len(bits) == 1 {
				err = c.client.WriteSingleCoil(ctx, v.offset, bits[0])
			} else {
				err = c.client.WriteMultipleCoils(ctx, v.offset, bits)
			}
		}
	} else {
		var regs []uint16
		if regs, err = v.codec.EncodeRegisters(in); err == nil {
			if len(regs) == 1 {
				err = c.client.WriteSingleRegister(ctx, v.offset, regs[0])
			} else {
				err = c.client.WriteMultipleRegisters(ctx, v.offset, regs)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("device %s property %s: write %s %d: %w", c.id, p.Name, v.table, v.offset, err)
	}
	return nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.client.Close() }

// toValue converts a decoded value to the property's type.
func toValue(t mapper.Type, raw any) (mapper.Value, error) {
	switch x := raw.(type) {
	case bool:
		return mapper.BoolValue(x), nil
	case string:
		return mapper.StringValue(x), nil
	case []byte:
		return mapper.BytesValue(x), nil
	case int64:
		return numberValue(t, float64(x), func() mapper.Value { return mapper.IntValue(x) })
	case uint64:
		return numberValue(t, float64(x), func() (v mapper.Value) {
			if x > math.MaxInt64 {
				return mapper.Value{}
			}
			return mapper.IntValue(int64(x))
		})
	case float64:
		return numberValue(t, x, func() mapper.Value {
			if x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
				return mapper.Value{}
			}
			return mapper.IntValue(int64(x))
		})
	}
	return mapper.Value{}, fmt.Errorf("unexpected decoded value %T", raw)
}

func numberValue(t mapper.Type, f float64, asInt func() mapper.Value) (mapper.Value, error) {
	switch t {
	case mapper.TypeInt:
		v := asInt()
		if v.IsZero() {
			return v, fmt.Errorf("value %g is not an INT (a scaled value with a fraction needs a FLOAT or DOUBLE property)", f)
		}
		return v, nil
	case mapper.TypeFloat:
		return mapper.FloatValue(float32(f)), nil
	case mapper.TypeDouble:
		return mapper.DoubleValue(f), nil
	}
	return mapper.Value{}, fmt.Errorf("a number cannot be a %s value", t)
}

var errNotIntegral = errors.New("is not an integer")

// fromValue converts a value to what the codec encodes.
func fromValue(val mapper.Value, c modbus.Codec) (any, error) {
	switch val.Type() {
	case mapper.TypeBoolean:
		return val.Bool()
	case mapper.TypeString:
		return val.String(), nil
	case mapper.TypeBytes:
		return val.Bytes()
	case mapper.TypeInt:
		return val.Int()
	case mapper.TypeFloat, mapper.TypeDouble:
		f, err := val.Float()
		if err != nil {
			return nil, err
		}
		integer := c.Type != modbus.TypeFloat32 && c.Type != modbus.TypeFloat64
		unscaled := (c.Scale == 0 || c.Scale == 1) && c.Offset == 0
		if integer && unscaled && f != math.Trunc(f) {
			// Rounding a desired 21.7 to 22 silently would apply a value nobody asked for.
			return nil, fmt.Errorf("%g %w and the register holds an unscaled %s", f, errNotIntegral, c.Type)
		}
		return f, nil
	}
	return nil, fmt.Errorf("unsupported value type %q", val.Type())
}
