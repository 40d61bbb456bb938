package configfile

import (
	"strings"
	"testing"
)

type setConfig struct {
	TypeMeta `json:",inline"`
	Name     string            `json:"name"`
	Port     int               `json:"port"`
	Hub      setHub            `json:"hub"`
	Labels   map[string]string `json:"labels,omitempty"`
	Addrs    []string          `json:"addrs,omitempty"`
}

type setHub struct {
	Enable  bool   `json:"enable"`
	Address string `json:"address"`
}

func TestSet(t *testing.T) {
	cfg := &setConfig{Name: "a", Port: 1, Hub: setHub{Address: "keep"}, Labels: map[string]string{"x": "1"}}
	for _, s := range []string{"hub.enable=true", "port=10", "name=123", "labels.y=2", "addrs=[1.2.3.4, 5.6.7.8]"} {
		if err := Set(cfg, s); err != nil {
			t.Fatalf("Set(%q): %v", s, err)
		}
	}
	if !cfg.Hub.Enable || cfg.Hub.Address != "keep" || cfg.Port != 10 || cfg.Name != "123" {
		t.Fatalf("got %+v", cfg)
	}
	if cfg.Labels["x"] != "1" || cfg.Labels["y"] != "2" {
		t.Fatalf("labels %v: want both kept and added", cfg.Labels)
	}
	if len(cfg.Addrs) != 2 || cfg.Addrs[1] != "5.6.7.8" {
		t.Fatalf("addrs %v", cfg.Addrs)
	}
}

func TestSetRejects(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hub.enabel=true", "unknown field"},
		{"port=ten", "port"},
		{"noequals", "want key=value"},
		{"hub..enable=true", "empty key segment"},
		{"kind=Other", "schema is fixed"},
		{"hub=3", "hub"},
		{strings.Repeat("a", MaxSetLength+1), "longer than"},
	} {
		cfg := &setConfig{Port: 1}
		err := Set(cfg, tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Set(%.40q) = %v, want error containing %q", tc.in, err, tc.want)
		}
		if cfg.Port != 1 {
			t.Errorf("Set(%.40q) changed port to %d", tc.in, cfg.Port)
		}
	}
}

func FuzzSet(f *testing.F) {
	for _, s := range []string{"hub.enable=true", "labels.a=b", "addrs=[a]", "port={a: 1}", "=", "a.b.c.d=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cfg := &setConfig{}
		_ = Set(cfg, s)
	})
}
