// Command modbus-sim is a Modbus TCP device simulator for demos and tests: an in-memory
// register bank served on --listen, with initial values from --set.
//
//	modbus-sim --listen 127.0.0.1:5502 --unit 1 --set holding:0=215 --set coils:3=1
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/skerry-io/skerry/pkg/modbus"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "modbus-sim:", err)
		os.Exit(1)
	}
}

// setFlags collects repeated --set values.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

func run() error {
	var (
		sets   setFlags
		listen = flag.String("listen", "127.0.0.1:5502", "address to serve Modbus TCP on")
		unit   = flag.Uint("unit", 1, "unit id to answer as (0: any)")
		size   = flag.Int("size", 1024, "addresses per table (1..65536)")
	)
	flag.Var(&sets, "set", "initial value TABLE:ADDR=VALUE[,VALUE...] (TABLE: coils, discrete, holding, input; repeatable)")
	flag.Parse()
	if flag.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if *unit > 255 {
		return fmt.Errorf("--unit %d out of range 0..255", *unit)
	}
	bank, err := modbus.NewBank(modbus.BankSizes{Coils: *size, DiscreteInputs: *size, HoldingRegisters: *size, InputRegisters: *size})
	if err != nil {
		return err
	}
	for _, s := range sets {
		if err := applySet(bank, s); err != nil {
			return fmt.Errorf("--set %q: %w", s, err)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv := modbus.NewServer(bank, modbus.ServerOptions{UnitID: byte(*unit), Logger: log})
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Info("modbus simulator serving", "listen", l.Addr().String(), "unit", *unit)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		_ = srv.Close()
		<-done
		return nil
	case err := <-done:
		_ = srv.Close()
		if errors.Is(err, modbus.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// applySet parses TABLE:ADDR=VALUE[,VALUE...] strictly and stores the values. Bits are 0/1
// or true/false; registers are 0..65535 or -32768..-1 (stored as two's complement).
func applySet(bank *modbus.Bank, s string) error {
	tableAddr, values, ok := strings.Cut(s, "=")
	if !ok {
		return errors.New("want TABLE:ADDR=VALUE")
	}
	tname, addrStr, ok := strings.Cut(tableAddr, ":")
	if !ok {
		return errors.New("want TABLE:ADDR=VALUE")
	}
	t, err := modbus.ParseTable(tname)
	if err != nil {
		return err
	}
	addr, err := strconv.ParseUint(addrStr, 10, 16)
	if err != nil {
		return fmt.Errorf("address %q: want 0..65535", addrStr)
	}
	parts := strings.Split(values, ",")
	if t.IsBits() {
		bits := make([]bool, len(parts))
		for i, p := range parts {
			if bits[i], err = strconv.ParseBool(p); err != nil {
				return fmt.Errorf("bit %q: want 0, 1, true or false", p)
			}
		}
		return bank.SetBits(t, int(addr), bits...)
	}
	regs := make([]uint16, len(parts))
	for i, p := range parts {
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < -32768 || n > 65535 {
			return fmt.Errorf("register %q: want -32768..65535", p)
		}
		regs[i] = uint16(n)
	}
	return bank.SetRegisters(t, int(addr), regs...)
}
