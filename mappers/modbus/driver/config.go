package driver

import (
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skerry-io/skerry/mapper"
	"github.com/skerry-io/skerry/pkg/modbus"
)

// Protocol is the protocolName of the devices this driver serves.
const Protocol = "modbus"

// deviceConfig is a device's protocol configData (docs/modbus.md lists the keys).
type deviceConfig struct {
	// addr is host:port for Modbus TCP; serialPort the device path for RTU. Exactly one is set.
	addr       string
	serialPort string
	// line is the serial line's settings for RTU; zero fields keep the OS's.
	line    modbus.SerialConfig
	slaveID byte
	timeout time.Duration
}

// DefaultPort is Modbus TCP's registered port.
const DefaultPort = 502

// parseDeviceConfig reads the protocol configData. KubeEdge's older layout nests the TCP
// settings under "tcp" and the serial ones under "com"; both layouts are accepted.
func parseDeviceConfig(data map[string]any) (deviceConfig, error) {
	flat := map[string]any{}
	for k, v := range data {
		flat[k] = v
	}
	for _, nest := range []string{"tcp", "com"} {
		sub, ok := data[nest]
		if !ok {
			continue
		}
		m, ok := sub.(map[string]any)
		if !ok {
			return deviceConfig{}, fmt.Errorf("%q must be an object, got %T", nest, sub)
		}
		for k, v := range m {
			if _, dup := data[k]; dup {
				return deviceConfig{}, fmt.Errorf("%q is set both at the top and in %q", k, nest)
			}
			flat[k] = v
		}
	}
	var c deviceConfig
	ip, err := getString(flat, "ip")
	if err != nil {
		return c, err
	}
	c.serialPort, err = getString(flat, "serialPort")
	if err != nil {
		return c, err
	}
	switch {
	case ip != "" && c.serialPort != "":
		return c, fmt.Errorf(`"ip" and "serialPort" are both set; a device is either Modbus TCP or RTU`)
	case ip == "" && c.serialPort == "":
		return c, fmt.Errorf(`neither "ip" (Modbus TCP) nor "serialPort" (Modbus RTU) is set`)
	case ip != "":
		port, err := getInt(flat, "port", 1, 65535, DefaultPort)
		if err != nil {
			return c, err
		}
		if strings.ContainsAny(ip, "/ ") {
			return c, fmt.Errorf(`"ip" %q is not a host name or address`, ip)
		}
		c.addr = net.JoinHostPort(ip, strconv.FormatInt(port, 10))
	default:
		if !strings.HasPrefix(c.serialPort, "/") {
			return c, fmt.Errorf(`"serialPort" %q must be an absolute device path`, c.serialPort)
		}
		baud, err := getInt(flat, "baudRate", 0, math.MaxInt32, 0)
		if err != nil {
			return c, err
		}
		if baud != 0 && !slices.Contains(modbus.StandardBaudRates, int(baud)) {
			return c, fmt.Errorf(`"baudRate" %d is not a standard rate %v`, baud, modbus.StandardBaudRates)
		}
		dataBits, err := getInt(flat, "dataBits", 5, 8, 0)
		if err != nil {
			return c, err
		}
		stopBits, err := getInt(flat, "stopBits", 1, 2, 0)
		if err != nil {
			return c, err
		}
		p, err := getString(flat, "parity")
		if err != nil {
			return c, err
		}
		parity, err := modbus.ParseParity(p)
		if err != nil {
			return c, fmt.Errorf(`"parity" %q is not none, even or odd (or N, E, O)`, p)
		}
		c.line = modbus.SerialConfig{BaudRate: int(baud), DataBits: int(dataBits), Parity: parity, StopBits: int(stopBits)}
	}
	// RTU addresses are 1..247; Modbus TCP unit ids may be anything but 0 here (0 would be
	// taken as "default").
	maxID := int64(255)
	if c.serialPort != "" {
		maxID = 247
	}
	id, err := getInt(flat, "slaveID", 1, maxID, modbus.DefaultUnitID)
	if err != nil {
		return c, err
	}
	c.slaveID = byte(id)
	ms, err := getInt(flat, "timeout", 1, 600000, 0)
	if err != nil {
		return c, err
	}
	c.timeout = time.Duration(ms) * time.Millisecond
	return c, nil
}

// visitor is a property's visitor configData, resolved against the property's type.
type visitor struct {
	table  modbus.Table
	offset uint16
	codec  modbus.Codec
}

var registerNames = map[string]modbus.Table{
	"coilregister":          modbus.Coils,
	"discreteinputregister": modbus.DiscreteInputs,
	"holdingregister":       modbus.HoldingRegisters,
	"inputregister":         modbus.InputRegisters,
}

// parseVisitor reads a property's visitor configData.
func parseVisitor(p *mapper.Property) (visitor, error) {
	data := p.Visitor
	var v visitor
	reg, err := getString(data, "register")
	if err != nil {
		return v, err
	}
	t, ok := registerNames[strings.ToLower(reg)]
	if !ok {
		return v, fmt.Errorf(`"register" %q is not CoilRegister, DiscreteInputRegister, HoldingRegister or InputRegister`, reg)
	}
	v.table = t
	off, err := getInt(data, "offset", 0, 65535, 0)
	if err != nil {
		return v, err
	}
	v.offset = uint16(off)
	limit, err := getInt(data, "limit", 0, modbus.MaxReadBits, 0)
	if err != nil {
		return v, err
	}
	c := modbus.Codec{Count: int(limit), Bits: t.IsBits()}
	if c.Scale, err = getFloat(data, "scale", 1); err != nil {
		return v, err
	}
	if c.Scale == 0 {
		return v, fmt.Errorf(`"scale" must not be 0`)
	}
	if c.Offset, err = getFloat(data, "valueOffset", 0); err != nil {
		return v, err
	}
	if c.ByteSwap, err = getBool(data, "isSwap"); err != nil {
		return v, err
	}
	if c.WordSwap, err = getBool(data, "isRegisterSwap"); err != nil {
		return v, err
	}
	dt, err := getString(data, "dataType")
	if err != nil {
		return v, err
	}
	if dt != "" {
		if c.Type, err = modbus.ParseDataType(dt); err != nil {
			return v, fmt.Errorf(`"dataType": %w`, err)
		}
		if !compatible(p.Type, c.Type) {
			return v, fmt.Errorf(`"dataType" %s cannot hold a %s property`, c.Type, p.Type)
		}
	} else if c.Type, err = defaultDataType(p.Type, t.IsBits(), int(limit)); err != nil {
		return v, err
	}
	if c.Count == 0 && (c.Type == modbus.TypeString || c.Type == modbus.TypeBytes) {
		return v, fmt.Errorf(`a %s property needs "limit", the number of registers`, p.Type)
	}
	if err := c.Validate(); err != nil {
		return v, err
	}
	if int(v.offset)+c.Size() > 1<<16 {
		return v, fmt.Errorf(`"offset" %d + %d runs past the last address`, v.offset, c.Size())
	}
	v.codec = c
	return v, nil
}

// defaultDataType is the data type a property of type pt has when the visitor names none.
func defaultDataType(pt mapper.Type, bits bool, limit int) (modbus.DataType, error) {
	if bits {
		switch pt {
		case mapper.TypeBoolean:
			return modbus.TypeBoolean, nil
		case mapper.TypeInt:
			// Up to 64 bits read as one unsigned number, first bit least significant.
			return modbus.TypeUint64, nil
		}
		return "", fmt.Errorf("a %s property cannot live in coils or discrete inputs", pt)
	}
	switch pt {
	case mapper.TypeInt:
		switch limit {
		case 0, 1:
			return modbus.TypeInt16, nil
		case 2:
			return modbus.TypeInt32, nil
		case 4:
			return modbus.TypeInt64, nil
		}
		return "", fmt.Errorf(`an INT property spans 1, 2 or 4 registers, not "limit" %d`, limit)
	case mapper.TypeFloat, mapper.TypeDouble:
		switch {
		case limit == 1:
			// One register holding a scaled integer (a temperature in tenths, say): the
			// usual way KubeEdge models write a FLOAT read from a 16-bit register.
			return modbus.TypeInt16, nil
		case limit == 2, limit == 0 && pt == mapper.TypeFloat:
			return modbus.TypeFloat32, nil
		case limit == 4, limit == 0:
			return modbus.TypeFloat64, nil
		}
		return "", fmt.Errorf(`a %s property spans 1 (a scaled int16), 2 or 4 registers, not "limit" %d`, pt, limit)
	case mapper.TypeBoolean:
		return modbus.TypeBoolean, nil
	case mapper.TypeString:
		return modbus.TypeString, nil
	case mapper.TypeBytes:
		return modbus.TypeBytes, nil
	}
	return "", fmt.Errorf("property type %s is not supported by the modbus driver", pt)
}

func compatible(pt mapper.Type, dt modbus.DataType) bool {
	switch dt {
	case modbus.TypeBoolean:
		return pt == mapper.TypeBoolean
	case modbus.TypeString:
		return pt == mapper.TypeString
	case modbus.TypeBytes:
		return pt == mapper.TypeBytes
	}
	return pt.Numeric()
}

// configData values arrive as JSON-shaped values (int64, float64, string, bool, ...); numbers
// are also accepted as strings, since KubeEdge users often quote them.

func getString(m map[string]any, key string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%q must be a string, got %T", key, v)
	}
	return strings.TrimSpace(s), nil
}

func getInt(m map[string]any, key string, lo, hi, def int64) (int64, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case int:
		n = int64(x)
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%q %d out of range %d..%d", key, x, lo, hi)
		}
		n = int64(x)
	case float64:
		if x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
			return 0, fmt.Errorf("%q %v is not an integer", key, x)
		}
		n = int64(x)
	case string:
		var err error
		if n, err = strconv.ParseInt(strings.TrimSpace(x), 10, 64); err != nil {
			return 0, fmt.Errorf("%q %q is not an integer", key, x)
		}
	default:
		return 0, fmt.Errorf("%q must be an integer, got %T", key, v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%q %d out of range %d..%d", key, n, lo, hi)
	}
	return n, nil
}

func getFloat(m map[string]any, key string, def float64) (float64, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case int64:
		f = float64(x)
	case int:
		f = float64(x)
	case uint64:
		f = float64(x)
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
			return 0, fmt.Errorf("%q %q is not a number", key, x)
		}
	default:
		return 0, fmt.Errorf("%q must be a number, got %T", key, v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q must be a finite number", key)
	}
	return f, nil
}

func getBool(m map[string]any, key string) (bool, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return false, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		if err != nil {
			return false, fmt.Errorf("%q %q is not true or false", key, x)
		}
		return b, nil
	}
	return false, fmt.Errorf("%q must be true or false, got %T", key, v)
}
