package main

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/skerry-io/skerry/mapper"
)

func gen(t *testing.T, v map[string]any) *generator {
	t.Helper()
	cfg, err := parseGenConfig(v)
	if err != nil {
		t.Fatal(err)
	}
	return newGenerator(cfg, time.Unix(0, 0), 1)
}

func TestCounterWraps(t *testing.T) {
	g := gen(t, map[string]any{"kind": "counter", "min": int64(1), "max": int64(3), "step": int64(1)})
	var got []float64
	for i := range 5 {
		got = append(got, g.next(time.Unix(0, 0), i == 0))
	}
	want := []float64{1, 2, 3, 1, 2}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("counter = %v, want %v", got, want)
		}
	}
}

func TestSine(t *testing.T) {
	g := gen(t, map[string]any{"kind": "sine", "min": 10.0, "max": 20.0, "periodSeconds": int64(4)})
	for _, c := range []struct {
		sec  float64
		want float64
	}{{0, 15}, {1, 20}, {2, 15}, {3, 10}} {
		at := time.Unix(0, 0).Add(time.Duration(c.sec * float64(time.Second)))
		if got := g.next(at, false); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("sine at %gs = %g, want %g", c.sec, got, c.want)
		}
	}
}

func TestRandomWalkStaysInRange(t *testing.T) {
	g := gen(t, map[string]any{"min": -1.0, "max": 1.0, "step": 0.5, "initial": "0.25"})
	prev := g.next(time.Time{}, true)
	if prev != 0.25 {
		t.Fatalf("initial = %g", prev)
	}
	moved := false
	for range 1000 {
		v := g.next(time.Time{}, false)
		if v < -1 || v > 1 || math.Abs(v-prev) > 0.5+1e-12 {
			t.Fatalf("random walk stepped from %g to %g", prev, v)
		}
		moved = moved || v != prev
		prev = v
	}
	if !moved {
		t.Error("random walk never moved")
	}
}

func TestConstantAndTypes(t *testing.T) {
	g := gen(t, map[string]any{"kind": "constant", "initial": int64(7)})
	cfg := g.cfg
	for i := range 3 {
		if v := g.next(time.Time{}, i == 0); v != 7 {
			t.Fatalf("constant = %g", v)
		}
	}
	if v := toValue(mapper.TypeInt, 6.6, cfg); v.String() != "7" {
		t.Errorf("INT = %s", v)
	}
	if v := toValue(mapper.TypeBoolean, 70, cfg); v.String() != "true" {
		t.Errorf("BOOLEAN = %s", v)
	}
	s := gen(t, map[string]any{"kind": "constant", "initial": "hello"}).cfg
	if v := toValue(mapper.TypeString, 0, s); v.String() != "hello" {
		t.Errorf("STRING = %q", v)
	}
}

func TestBadConfig(t *testing.T) {
	for _, v := range []map[string]any{
		{"kind": "square"},
		{"min": 5.0, "max": 1.0},
		{"periodSeconds": 0.0},
		{"step": "fast"},
		{"min": true},
	} {
		if _, err := parseGenConfig(v); err == nil {
			t.Errorf("%v accepted", v)
		}
	}
}

func TestDriverKeepsWrittenValue(t *testing.T) {
	d := newDriver()
	p := &mapper.Property{Name: "sp", Type: mapper.TypeInt, AccessMode: mapper.ReadWrite,
		Visitor: map[string]any{"kind": "counter"}}
	dev := &mapper.Device{Name: "v", Namespace: "default", Properties: []*mapper.Property{p}}
	ctx := context.Background()
	conn, err := d.Connect(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := conn.Read(ctx, p); v.String() != "0" {
		t.Errorf("first read = %s", v)
	}
	if v, _ := conn.Read(ctx, p); v.String() != "1" {
		t.Errorf("second read = %s", v)
	}
	if err := conn.Write(ctx, p, mapper.IntValue(42)); err != nil {
		t.Fatal(err)
	}
	// Held across reads and reconnects.
	conn, err = d.Connect(ctx, dev)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if v, _ := conn.Read(ctx, p); v.String() != "42" {
			t.Errorf("read after write = %s", v)
		}
	}
	p.Visitor = map[string]any{"kind": "nope"}
	if _, err := d.Connect(ctx, dev); err == nil {
		t.Error("bad visitor config accepted")
	}
}
