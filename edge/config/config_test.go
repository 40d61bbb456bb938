package config

import (
	"strings"
	"testing"

	"github.com/skerry-io/skerry/pkg/configfile"
)

func TestDefaultIsValidAndRoundTrips(t *testing.T) {
	d := Default()
	d.NodeName = "edge-node" // the host name of a test machine may not be a valid node name
	if err := d.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	b, err := configfile.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	got := &EdgeCore{}
	if err := configfile.Decode(b, Meta, got); err != nil {
		t.Fatalf("printed default config does not load: %v\n%s", err, b)
	}
	if *got != *d {
		t.Fatalf("round trip: got %+v, want %+v", got, d)
	}
}

func TestValidate(t *testing.T) {
	cases := map[string]struct {
		mutate func(*EdgeCore)
		want   string // empty: valid
	}{
		"valid":              {func(*EdgeCore) {}, ""},
		"empty node name":    {func(c *EdgeCore) { c.NodeName = "" }, "nodeName: empty"},
		"upper node name":    {func(c *EdgeCore) { c.NodeName = "Edge1" }, `nodeName "Edge1"`},
		"relative data dir":  {func(c *EdgeCore) { c.DataDir = "var/lib" }, "dataDir"},
		"tcp endpoint":       {func(c *EdgeCore) { c.Runtime.Endpoint = "tcp://127.0.0.1:1234" }, "runtime.endpoint"},
		"relative socket":    {func(c *EdgeCore) { c.Runtime.Endpoint = "unix://run/c.sock" }, "runtime.endpoint"},
		"unparsable":         {func(c *EdgeCore) { c.Runtime.Endpoint = "unix://%zz" }, "runtime.endpoint"},
		"dotted node name":   {func(c *EdgeCore) { c.NodeName = "edge-1.site-a" }, ""},
		"explicit unix path": {func(c *EdgeCore) { c.Runtime.Endpoint = "unix:///run/skerry/containerd/containerd.sock" }, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
			c.NodeName = "edge-node"
			tc.mutate(c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}
