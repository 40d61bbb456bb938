package modbus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// The cross-check runs pymodbus (Debian's python3-pymodbus 3.0, an independent
// implementation) against our client and our server. It skips when no python3 with pymodbus
// is found; SKERRY_PYTHON names the interpreter to use.

func findPymodbus(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("SKERRY_PYTHON"), "python3", "/usr/bin/python3"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		p, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = exec.CommandContext(ctx, p, "-c", "import pymodbus.client, pymodbus.server").Run()
		cancel()
		if err == nil {
			return p
		}
	}
	t.Skip("no python3 with pymodbus found (apt-get install python3-pymodbus, or set SKERRY_PYTHON)")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestCrossCheckOurClientPymodbusServer(t *testing.T) {
	py := findPymodbus(t)
	port := freePort(t)
	var stderr bytes.Buffer
	cmd := exec.Command(py, filepath.Join("testdata", "pymodbus_server.py"), strconv.Itoa(port))
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Wait until the server listens (or dies).
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("pymodbus server exited: %v\n%s", err, stderr.String())
		case <-ctx.Done():
			t.Fatalf("pymodbus server not listening on %s: %s", addr, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	c, err := Dial(ctx, addr, Options{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	coils, err := c.ReadCoils(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := c.ReadDiscreteInputs(ctx, 1, 99)
	if err != nil {
		t.Fatal(err)
	}
	hold, err := c.ReadHoldingRegisters(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	in, err := c.ReadInputRegisters(ctx, 10, 5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if coils[i] != (i%3 == 0) || hold[i] != uint16(3*i) {
			t.Fatalf("address %d: coil %v holding %d", i, coils[i], hold[i])
		}
		if i >= 1 && disc[i-1] != (i%2 == 0) {
			t.Fatalf("discrete %d = %v", i, disc[i-1])
		}
	}
	if !slices.Equal(in, []uint16{1010, 1011, 1012, 1013, 1014}) {
		t.Fatalf("input %v", in)
	}

	if err := c.WriteSingleCoil(ctx, 1, true); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMultipleCoils(ctx, 20, []bool{false, true, true, false, true, false, true, true, true}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteSingleRegister(ctx, 2, 0xABCD); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMultipleRegisters(ctx, 40, []uint16{11, 22, 33}); err != nil {
		t.Fatal(err)
	}
	coils, err = c.ReadCoils(ctx, 0, 30)
	if err != nil {
		t.Fatal(err)
	}
	if !coils[1] || !slices.Equal(coils[20:29], []bool{false, true, true, false, true, false, true, true, true}) {
		t.Fatalf("coils after write %v", coils)
	}
	hold, err = c.ReadHoldingRegisters(ctx, 0, 45)
	if err != nil {
		t.Fatal(err)
	}
	if hold[2] != 0xABCD || !slices.Equal(hold[40:43], []uint16{11, 22, 33}) || hold[43] != 3*43 {
		t.Fatalf("holding after write %v", hold)
	}
	var ex *ExceptionError
	if _, err := c.ReadHoldingRegisters(ctx, 95, 10); !errors.As(err, &ex) || ex.Code != ExceptionIllegalDataAddress {
		t.Fatalf("read past the table: %v, want illegal data address", err)
	}
	// The connection still works after an exception.
	if _, err := c.ReadInputRegisters(ctx, 0, 1); err != nil {
		t.Fatal(err)
	}
}

func TestCrossCheckPymodbusClientOurServer(t *testing.T) {
	py := findPymodbus(t)
	srv, addr := startServer(t, ServerOptions{UnitID: 3})
	b := srv.Bank()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.SetBits(Coils, 0, true, false, false, true, true, false, false, false, true, false))
	must(b.SetBits(DiscreteInputs, 0, false, true, false, false, false, false, false, true, false, true))
	must(b.SetRegisters(HoldingRegisters, 0, 1, 2, 65535, 0, 4660))
	must(b.SetRegisters(InputRegisters, 0, 9, 8, 7, 6, 5))

	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join("testdata", "pymodbus_client.py"), host, port, "3")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pymodbus client: %v\n%s", err, stderr.String())
	}
	var got struct {
		Coils         []bool   `json:"coils"`
		Discrete      []bool   `json:"discrete"`
		Holding       []uint16 `json:"holding"`
		Input         []uint16 `json:"input"`
		HoldingAfter  []uint16 `json:"holding_after"`
		ExceptionCode *int     `json:"exception_code"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if !slices.Equal(got.Coils, []bool{true, false, false, true, true, false, false, false, true, false}) {
		t.Errorf("coils %v", got.Coils)
	}
	if !slices.Equal(got.Discrete, []bool{false, true, false, false, false, false, false, true, false, true}) {
		t.Errorf("discrete %v", got.Discrete)
	}
	if !slices.Equal(got.Holding, []uint16{1, 2, 65535, 0, 4660}) || !slices.Equal(got.Input, []uint16{9, 8, 7, 6, 5}) {
		t.Errorf("holding %v input %v", got.Holding, got.Input)
	}
	if !slices.Equal(got.HoldingAfter, []uint16{4321}) {
		t.Errorf("holding after write %v", got.HoldingAfter)
	}
	if got.ExceptionCode == nil || *got.ExceptionCode != int(ExceptionIllegalDataAddress) {
		t.Errorf("exception code %v, want 2", got.ExceptionCode)
	}
	// What pymodbus wrote landed in our tables.
	coils, _ := b.Bits(Coils, 50, 14)
	if !coils[0] || !slices.Equal(coils[10:14], []bool{true, false, true, true}) {
		t.Errorf("coils %v", coils)
	}
	regs, _ := b.Registers(HoldingRegisters, 60, 3)
	if !slices.Equal(regs, []uint16{7, 8, 9}) {
		t.Errorf("registers %v", regs)
	}
}
