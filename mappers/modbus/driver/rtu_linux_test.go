package driver

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skerry-io/skerry/mapper"
	"github.com/skerry-io/skerry/pkg/modbus"
)

// ptyPair opens a pseudo-terminal: the master (the "device" side) and the slave's path.
func ptyPair(t *testing.T) (*os.File, string) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	rc, err := master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var path string
	var perr error
	if err := rc.Control(func(fd uintptr) {
		if perr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); perr != nil {
			return
		}
		var n int
		n, perr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		path = fmt.Sprintf("/dev/pts/%d", n)
	}); err != nil || perr != nil {
		t.Fatalf("pty: %v %v", err, perr)
	}
	return master, path
}

// The mapper programs the serial line from configData and reads a property over RTU; the
// simulated device answers on the pty's master side.
func TestDriverRTUOverPTY(t *testing.T) {
	master, path := ptyPair(t)
	bank, err := modbus.NewBank(modbus.DefaultBankSizes)
	if err != nil {
		t.Fatal(err)
	}
	srv := modbus.NewServer(bank, modbus.ServerOptions{UnitID: 3})
	done := make(chan error, 1)
	go func() { done <- srv.ServeRTU(master) }()
	t.Cleanup(func() { srv.Close(); <-done })
	bank.SetRegisters(modbus.HoldingRegisters, 4, 0x0d0a) // CR LF: mangled unless the line is raw

	temp := prop("temperature", mapper.TypeInt, map[string]any{"register": "HoldingRegister", "offset": int64(4), "limit": int64(1)})
	c := connect(t, map[string]any{"com": map[string]any{"serialPort": path, "baudRate": "19200", "dataBits": int64(8), "parity": "N", "stopBits": 2.0}, "slaveID": int64(3)}, temp)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.Read(ctx, temp)
	if err != nil || v.String() != "3338" {
		t.Fatalf("read %v, %v; want 3338", v, err)
	}
	// configData's settings are on the line.
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var tio *unix.Termios
	var terr error
	if err := rc.Control(func(fd uintptr) { tio, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS) }); err != nil || terr != nil {
		t.Fatalf("termios: %v %v", err, terr)
	}
	if tio.Cflag&unix.CBAUD != unix.B19200 || tio.Cflag&unix.CSTOPB == 0 || tio.Lflag&(unix.ICANON|unix.ECHO) != 0 {
		t.Errorf("line not as configured: cflag %#x lflag %#x", tio.Cflag, tio.Lflag)
	}

	// A line setting the device cannot take fails Connect with the device's name.
	d := &Driver{}
	_, err = d.Connect(ctx, &mapper.Device{Name: "d", Namespace: "ns", ProtocolConfig: map[string]any{"serialPort": "/dev/null", "baudRate": int64(9600)}})
	if err == nil || !strings.Contains(err.Error(), "device ns/d") || !strings.Contains(err.Error(), "/dev/null") {
		t.Errorf("baud rate on a non-terminal: %v", err)
	}
}
