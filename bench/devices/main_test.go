package main

import (
	"os"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 5}, {0.9, 9}, {0.99, 10}, {0, 1}, {1, 10}} {
		if got := percentile(ds, c.p); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}

func TestReadMemoryAndCPU(t *testing.T) {
	m, err := readMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.VmRSS <= 0 || m.RssAnon <= 0 || m.RssFile <= 0 || m.VmHWM < m.VmRSS || m.RssAnon+m.RssFile > m.VmRSS+m.VmRSS/10 {
		t.Errorf("implausible memory %+v", m)
	}
	if _, err := readMemory(-1); err == nil {
		t.Error("readMemory(-1) succeeded")
	}
	if cpuSeconds(os.Getpid()) < 0 {
		t.Error("negative CPU time")
	}
}

func TestObjectsDecode(t *testing.T) {
	var v map[string]any
	if err := decode(deviceJSON("ns", "d", "node", 100), &v); err != nil {
		t.Fatal(err)
	}
	if err := decode(modelJSON("ns"), &v); err != nil {
		t.Fatal(err)
	}
	if err := decode("{", &v); err == nil {
		t.Error("decode of bad JSON succeeded")
	}
}
