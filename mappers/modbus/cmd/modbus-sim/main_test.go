package main

import (
	"slices"
	"testing"

	"github.com/skerry-io/skerry/pkg/modbus"
)

func TestApplySet(t *testing.T) {
	bank, err := modbus.NewBank(modbus.BankSizes{Coils: 8, DiscreteInputs: 8, HoldingRegisters: 8, InputRegisters: 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"holding:0=123,-1", "coils:3=1,true,0", "input:7=65535", "discrete:0=true"} {
		if err := applySet(bank, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if r, _ := bank.Registers(modbus.HoldingRegisters, 0, 2); !slices.Equal(r, []uint16{123, 65535}) {
		t.Fatalf("holding %v", r)
	}
	if b, _ := bank.Bits(modbus.Coils, 3, 3); !slices.Equal(b, []bool{true, true, false}) {
		t.Fatalf("coils %v", b)
	}
	for _, bad := range []string{"holding0=1", "holding:0", "foo:0=1", "holding:x=1", "holding:0=70000",
		"holding:0=1.5", "coils:0=2", "holding:8=1", "holding:7=1,2", "holding:0=", "input:-1=1"} {
		if err := applySet(bank, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
