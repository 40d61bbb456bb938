package modbus

import (
	"fmt"
	"strings"
	"sync"
)

// Table is one of the four Modbus data tables.
type Table int

// The four tables.
const (
	Coils Table = iota
	DiscreteInputs
	HoldingRegisters
	InputRegisters
)

func (t Table) String() string {
	switch t {
	case Coils:
		return "coils"
	case DiscreteInputs:
		return "discrete"
	case HoldingRegisters:
		return "holding"
	case InputRegisters:
		return "input"
	}
	return fmt.Sprintf("table(%d)", int(t))
}

// IsBits reports whether the table holds bits (coils, discrete inputs).
func (t Table) IsBits() bool { return t == Coils || t == DiscreteInputs }

// ParseTable parses a table name as the simulator's --set flag spells it: coils (coil),
// discrete, holding, input.
func ParseTable(s string) (Table, error) {
	switch strings.ToLower(s) {
	case "coils", "coil":
		return Coils, nil
	case "discrete", "discrete-inputs":
		return DiscreteInputs, nil
	case "holding":
		return HoldingRegisters, nil
	case "input":
		return InputRegisters, nil
	}
	return 0, fmt.Errorf("modbus: unknown table %q (want coils, discrete, holding or input)", s)
}

// BankSizes are the number of addresses of each table, each at most 65536.
type BankSizes struct {
	Coils, DiscreteInputs, HoldingRegisters, InputRegisters int
}

// DefaultBankSizes gives every table 1024 addresses.
var DefaultBankSizes = BankSizes{1024, 1024, 1024, 1024}

// Bank is the in-memory data of a Server. It is safe for concurrent use.
type Bank struct {
	mu   sync.RWMutex
	bits [2][]bool   // Coils, DiscreteInputs
	regs [2][]uint16 // HoldingRegisters, InputRegisters
}

// NewBank returns a bank of the given sizes with every value zero.
func NewBank(s BankSizes) (*Bank, error) {
	for _, n := range []int{s.Coils, s.DiscreteInputs, s.HoldingRegisters, s.InputRegisters} {
		if n < 0 || n > 1<<16 {
			return nil, fmt.Errorf("modbus: bank size %d out of range 0..65536", n)
		}
	}
	return &Bank{
		bits: [2][]bool{make([]bool, s.Coils), make([]bool, s.DiscreteInputs)},
		regs: [2][]uint16{make([]uint16, s.HoldingRegisters), make([]uint16, s.InputRegisters)},
	}, nil
}

func rangeErr(t Table, addr, n, size int) error {
	if addr < 0 || n < 0 || addr+n > size {
		return fmt.Errorf("modbus: %s %d+%d outside 0..%d", t, addr, n, size)
	}
	return nil
}

// SetBits sets bits of a bit table from addr.
func (b *Bank) SetBits(t Table, addr int, v ...bool) error {
	if !t.IsBits() {
		return fmt.Errorf("modbus: %s is not a bit table", t)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.bits[t-Coils]
	if err := rangeErr(t, addr, len(v), len(s)); err != nil {
		return err
	}
	copy(s[addr:], v)
	return nil
}

// Bits returns n bits of a bit table from addr.
func (b *Bank) Bits(t Table, addr, n int) ([]bool, error) {
	if !t.IsBits() {
		return nil, fmt.Errorf("modbus: %s is not a bit table", t)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	s := b.bits[t-Coils]
	if err := rangeErr(t, addr, n, len(s)); err != nil {
		return nil, err
	}
	return append([]bool(nil), s[addr:addr+n]...), nil
}

// SetRegisters sets registers of a register table from addr.
func (b *Bank) SetRegisters(t Table, addr int, v ...uint16) error {
	if t != HoldingRegisters && t != InputRegisters {
		return fmt.Errorf("modbus: %s is not a register table", t)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.regs[t-HoldingRegisters]
	if err := rangeErr(t, addr, len(v), len(s)); err != nil {
		return err
	}
	copy(s[addr:], v)
	return nil
}

// Registers returns n registers of a register table from addr.
func (b *Bank) Registers(t Table, addr, n int) ([]uint16, error) {
	if t != HoldingRegisters && t != InputRegisters {
		return nil, fmt.Errorf("modbus: %s is not a register table", t)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	s := b.regs[t-HoldingRegisters]
	if err := rangeErr(t, addr, n, len(s)); err != nil {
		return nil, err
	}
	return append([]uint16(nil), s[addr:addr+n]...), nil
}

// size returns the number of addresses of t.
func (b *Bank) size(t Table) int {
	if t.IsBits() {
		return len(b.bits[t-Coils])
	}
	return len(b.regs[t-HoldingRegisters])
}
