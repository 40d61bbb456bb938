package driver

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skerry-io/skerry/mapper"
	"github.com/skerry-io/skerry/pkg/modbus"
)

func startSim(t *testing.T) (*modbus.Bank, string, int64) {
	t.Helper()
	bank, err := modbus.NewBank(modbus.DefaultBankSizes)
	if err != nil {
		t.Fatal(err)
	}
	srv := modbus.NewServer(bank, modbus.ServerOptions{UnitID: 2})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return bank, "127.0.0.1", int64(l.Addr().(*net.TCPAddr).Port)
}

func prop(name string, typ mapper.Type, visitor map[string]any) *mapper.Property {
	return &mapper.Property{Name: name, Type: typ, AccessMode: mapper.ReadWrite, Visitor: visitor}
}

func connect(t *testing.T, cfg map[string]any, props ...*mapper.Property) mapper.DeviceConn {
	t.Helper()
	d := &Driver{Options: modbus.Options{Timeout: 2 * time.Second}, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Connect(ctx, &mapper.Device{Name: "thermo", Namespace: "default", Protocol: Protocol, ProtocolConfig: cfg, Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDriverReadWrite(t *testing.T) {
	bank, ip, port := startSim(t)
	temp := prop("temperature", mapper.TypeFloat, map[string]any{"register": "HoldingRegister", "offset": int64(0), "limit": int64(1), "scale": 0.1})
	power := prop("power", mapper.TypeDouble, map[string]any{"register": "InputRegister", "offset": "10", "limit": "2", "isRegisterSwap": "true"})
	count := prop("count", mapper.TypeInt, map[string]any{"register": "holdingregister", "offset": 20.0, "limit": 2})
	on := prop("on", mapper.TypeBoolean, map[string]any{"register": "CoilRegister", "offset": int64(5)})
	door := prop("door", mapper.TypeBoolean, map[string]any{"register": "DiscreteInputRegister", "offset": int64(6)})
	label := prop("label", mapper.TypeString, map[string]any{"register": "HoldingRegister", "offset": int64(30), "limit": int64(3), "isSwap": true})
	// KubeEdge sends numbers as strings and as JSON numbers; slaveID as a string here.
	c := connect(t, map[string]any{"ip": ip, "port": strconv.FormatInt(port, 10), "slaveID": "2"}, temp, power, count, on, door, label)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	bank.SetRegisters(modbus.HoldingRegisters, 0, uint16(0xFF38)) // -200 → -20.0
	f := math.Float32bits(1234.5)
	bank.SetRegisters(modbus.InputRegisters, 10, uint16(f), uint16(f>>16))
	bank.SetRegisters(modbus.HoldingRegisters, 20, 0xFFFF, 0xFFFE)
	bank.SetBits(modbus.DiscreteInputs, 6, true)
	for _, tc := range []struct {
		p    *mapper.Property
		want string
	}{
		{temp, "-20"}, {power, "1234.5"}, {count, "-2"}, {on, "false"}, {door, "true"}, {label, ""},
	} {
		v, err := c.Read(ctx, tc.p)
		if err != nil {
			t.Fatalf("%s: %v", tc.p.Name, err)
		}
		if v.String() != tc.want || v.Type() != tc.p.Type {
			t.Errorf("%s = %s %q, want %s %q", tc.p.Name, v.Type(), v, tc.p.Type, tc.want)
		}
	}

	write := func(p *mapper.Property, s string) error {
		v, err := mapper.ParseValue(p.Type, s)
		if err != nil {
			t.Fatal(err)
		}
		return c.Write(ctx, p, v)
	}
	if err := write(temp, "21.5"); err != nil {
		t.Fatal(err)
	}
	if r, _ := bank.Registers(modbus.HoldingRegisters, 0, 1); r[0] != 215 {
		t.Fatalf("temperature register %d", r[0])
	}
	if err := write(count, "70000"); err != nil {
		t.Fatal(err)
	}
	if r, _ := bank.Registers(modbus.HoldingRegisters, 20, 2); !slices.Equal(r, []uint16{1, 4464}) {
		t.Fatalf("count registers %v", r)
	}
	if err := write(on, "true"); err != nil {
		t.Fatal(err)
	}
	if b, _ := bank.Bits(modbus.Coils, 5, 1); !b[0] {
		t.Fatal("coil not set")
	}
	if err := write(label, "hi!"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Read(ctx, label); err != nil || v.String() != "hi!" {
		t.Fatalf("label %q, %v", v, err)
	}
	if r, _ := bank.Registers(modbus.HoldingRegisters, 30, 2); r[0] != 'i'<<8|'h' {
		t.Fatalf("isSwap not applied: %04x", r)
	}
	// Read-only tables and out-of-range values are refused with the device and property named.
	if err := write(door, "false"); err == nil || !strings.Contains(err.Error(), "default/thermo property door") {
		t.Fatalf("write to discrete input: %v", err)
	}
	if err := write(label, "too long!"); err == nil {
		t.Fatal("long string written")
	}
	// A register past the bank: the device's exception comes back.
	far := prop("far", mapper.TypeInt, map[string]any{"register": "HoldingRegister", "offset": int64(5000)})
	_, err := c.Read(ctx, far)
	var ex *modbus.ExceptionError
	if !errors.As(err, &ex) || ex.Code != modbus.ExceptionIllegalDataAddress {
		t.Fatalf("read past the bank: %v", err)
	}
}

func TestDriverIntRejectsFraction(t *testing.T) {
	_, ip, port := startSim(t)
	p := prop("level", mapper.TypeDouble, map[string]any{"register": "HoldingRegister", "dataType": "uint16"})
	scaled := prop("scaled", mapper.TypeInt, map[string]any{"register": "HoldingRegister", "offset": int64(1), "scale": 0.5})
	c := connect(t, map[string]any{"ip": ip, "port": port, "slaveID": int64(2)}, p, scaled)
	ctx := context.Background()
	if err := c.Write(ctx, p, mapper.DoubleValue(21.7)); err == nil {
		t.Fatal("21.7 written to an unscaled uint16")
	}
	if err := c.Write(ctx, p, mapper.DoubleValue(22)); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, scaled, mapper.IntValue(3)); err != nil {
		t.Fatal(err)
	}
	// 3 is stored as 6 and reads back as the INT 3.
	if v, err := c.Read(ctx, scaled); err != nil || v.String() != "3" {
		t.Fatalf("%q, %v", v, err)
	}
}

func TestBadVisitorFailsOnlyItsProperty(t *testing.T) {
	_, ip, port := startSim(t)
	good := prop("good", mapper.TypeInt, map[string]any{"register": "HoldingRegister"})
	bad := prop("bad", mapper.TypeInt, map[string]any{"register": "Holding"})
	c := connect(t, map[string]any{"ip": ip, "port": port, "slaveID": 2.0}, good, bad)
	if _, err := c.Read(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), `device default/thermo property bad`) || !strings.Contains(err.Error(), `"register"`) {
		t.Fatalf("err %v", err)
	}
}

func TestConnectErrors(t *testing.T) {
	d := &Driver{}
	for _, tc := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{}, "neither"},
		{map[string]any{"ip": "127.0.0.1", "serialPort": "/dev/ttyS0"}, "both set"},
		{map[string]any{"ip": "127.0.0.1", "port": int64(70000)}, `"port" 70000 out of range`},
		{map[string]any{"ip": "127.0.0.1", "port": "abc"}, `"port" "abc" is not an integer`},
		{map[string]any{"ip": "127.0.0.1", "port": 502.5}, "not an integer"},
		{map[string]any{"ip": int64(1)}, `"ip" must be a string`},
		{map[string]any{"ip": "127.0.0.1", "slaveID": int64(0)}, `"slaveID" 0 out of range`},
		{map[string]any{"serialPort": "/dev/ttyS0", "slaveID": int64(248)}, `"slaveID" 248 out of range 1..247`},
		{map[string]any{"serialPort": "/dev/ttyS0", "parity": "mark"}, `"parity" "mark"`},
		{map[string]any{"serialPort": "/dev/ttyS0", "baudRate": int64(9601)}, `"baudRate" 9601 is not a standard rate`},
		{map[string]any{"serialPort": "/dev/ttyS0", "baudRate": int64(460800)}, `"baudRate" 460800`},
		{map[string]any{"serialPort": "/dev/ttyS0", "baudRate": int64(-1)}, `"baudRate" -1 out of range`},
		{map[string]any{"serialPort": "/dev/ttyS0", "dataBits": int64(9)}, `"dataBits" 9 out of range`},
		{map[string]any{"serialPort": "/dev/ttyS0", "stopBits": 1.5}, `"stopBits" 1.5 is not an integer`},
		{map[string]any{"serialPort": "ttyS0"}, "absolute"},
		{map[string]any{"tcp": "x"}, `"tcp" must be an object`},
		{map[string]any{"ip": "1.2.3.4", "tcp": map[string]any{"ip": "5.6.7.8"}}, "both at the top"},
	} {
		_, err := d.Connect(context.Background(), &mapper.Device{Name: "d", Namespace: "ns", ProtocolConfig: tc.cfg})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "device ns/d") {
			t.Errorf("%v: err %v, want %q", tc.cfg, err, tc.want)
		}
	}
	// KubeEdge's nested layout parses.
	c, err := parseDeviceConfig(map[string]any{"tcp": map[string]any{"ip": "10.0.0.1", "port": "1502"}, "slaveID": int64(3)})
	if err != nil || c.addr != "10.0.0.1:1502" || c.slaveID != 3 {
		t.Fatalf("%+v, %v", c, err)
	}
	c, err = parseDeviceConfig(map[string]any{"com": map[string]any{"serialPort": "/dev/ttyUSB0", "baudRate": int64(9600), "parity": "even", "dataBits": "8", "stopBits": 1.0}})
	want := modbus.SerialConfig{BaudRate: 9600, DataBits: 8, Parity: modbus.ParityEven, StopBits: 1}
	if err != nil || c.serialPort != "/dev/ttyUSB0" || c.line != want || c.slaveID != 1 {
		t.Fatalf("%+v, %v", c, err)
	}
	// KubeEdge's one-letter parity spellings, any case; an absent key keeps the OS's setting.
	for p, want := range map[string]modbus.Parity{"N": modbus.ParityNone, "e": modbus.ParityEven, "O": modbus.ParityOdd, "None": modbus.ParityNone} {
		c, err := parseDeviceConfig(map[string]any{"serialPort": "/dev/ttyS0", "parity": p})
		if err != nil || c.line != (modbus.SerialConfig{Parity: want}) {
			t.Errorf("parity %q: %+v, %v", p, c.line, err)
		}
	}
	if c, err := parseDeviceConfig(map[string]any{"serialPort": "/dev/ttyS0"}); err != nil || !c.line.IsZero() {
		t.Errorf("no line settings: %+v, %v", c.line, err)
	}
}

func TestParseVisitorErrors(t *testing.T) {
	for _, tc := range []struct {
		typ  mapper.Type
		v    map[string]any
		want string
	}{
		{mapper.TypeInt, map[string]any{}, `"register"`},
		{mapper.TypeInt, map[string]any{"register": "HoldingRegister", "offset": int64(-1)}, `"offset" -1 out of range`},
		{mapper.TypeInt, map[string]any{"register": "HoldingRegister", "limit": int64(3)}, `not "limit" 3`},
		{mapper.TypeFloat, map[string]any{"register": "HoldingRegister", "limit": int64(3)}, `not "limit" 3`},
		{mapper.TypeString, map[string]any{"register": "HoldingRegister"}, `needs "limit"`},
		{mapper.TypeString, map[string]any{"register": "CoilRegister", "limit": int64(2)}, "cannot live in coils"},
		{mapper.TypeInt, map[string]any{"register": "HoldingRegister", "scale": int64(0)}, `"scale" must not be 0`},
		{mapper.TypeInt, map[string]any{"register": "HoldingRegister", "isSwap": "yes"}, `"isSwap" "yes"`},
		{mapper.TypeInt, map[string]any{"register": "HoldingRegister", "dataType": "string"}, "cannot hold"},
		{mapper.TypeInt, map[string]any{"register": "HoldingRegister", "dataType": "int24"}, "unknown data type"},
		{mapper.TypeInt, map[string]any{"register": "HoldingRegister", "offset": int64(65535), "limit": int64(2)}, "past the last address"},
		{mapper.TypeBoolean, map[string]any{"register": "CoilRegister", "limit": int64(2)}, "1 bit"},
	} {
		_, err := parseVisitor(prop("p", tc.typ, tc.v))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: err %v, want %q", tc.typ, tc.v, err, tc.want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add("127.0.0.1", "502", "1", "HoldingRegister", "0", "2", "0.1", "true", "float32")
	f.Add("", "", "300", "CoilRegister", "-1", "2001", "x", "maybe", "")
	f.Fuzz(func(t *testing.T, ip, port, slave, reg, off, limit, scale, swap, dt string) {
		_, _ = parseDeviceConfig(map[string]any{"ip": ip, "port": port, "slaveID": slave})
		for _, typ := range []mapper.Type{mapper.TypeInt, mapper.TypeFloat, mapper.TypeDouble, mapper.TypeBoolean, mapper.TypeString, mapper.TypeBytes} {
			v, err := parseVisitor(prop("p", typ, map[string]any{"register": reg, "offset": off, "limit": limit, "scale": scale, "isSwap": swap, "isRegisterSwap": swap, "dataType": dt}))
			if err != nil {
				continue
			}
			if err := v.codec.Validate(); err != nil {
				t.Fatalf("accepted visitor has an invalid codec: %v", err)
			}
			// An accepted visitor decodes zeroes of its size without error.
			if v.codec.Bits {
				_, err = v.codec.DecodeBits(make([]bool, v.codec.Size()))
			} else {
				_, err = v.codec.DecodeRegisters(make([]uint16, v.codec.Size()))
			}
			if err != nil {
				t.Fatalf("decode zeroes: %v", err)
			}
		}
	})
}
