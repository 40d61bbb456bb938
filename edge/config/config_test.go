package config

import (
	"k8s.io/apimachinery/pkg/api/equality"
	"strings"
	"testing"
	"time"

	"github.com/skerry-io/skerry/pkg/configfile"
)

const goodToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.s3cret"

// valid returns the defaults plus what has no default: a node name (the host name of a test
// machine may not be a valid node name) and the cloud's address.
func valid() *EdgeCore {
	c := Default()
	c.NodeName = "edge-node"
	c.Hub.Server = "10.0.0.1:10000"
	return c
}

func TestDefaultsNeedOnlyTheServer(t *testing.T) {
	d := Default()
	d.NodeName = "edge-node"
	err := d.Validate()
	if err == nil || !strings.Contains(err.Error(), "hub.server: empty") {
		t.Fatalf("defaults without hub.server: got %v, want hub.server named", err)
	}
	d.Hub.Server = "10.0.0.1:10000"
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults plus hub.server invalid: %v", err)
	}
	h := d.Hub
	if h.Protocol != "websocket" || h.ProjectID != "e632aba927ea4ac2b575ec1603d56f10" ||
		h.KeepaliveInterval.Duration != 15*time.Second || h.Backoff.Base.Duration != time.Second ||
		h.Backoff.Max.Duration != time.Minute || h.Token != "" || h.BootstrapServer != "" {
		t.Fatalf("hub defaults: %+v", h)
	}
}

func TestDefaultIsValidAndRoundTrips(t *testing.T) {
	for name, d := range map[string]*EdgeCore{
		"defaults": func() *EdgeCore { c := Default(); c.NodeName = "edge-node"; return c }(),
		"full": func() *EdgeCore {
			c := valid()
			c.Hub.BootstrapServer = "10.0.0.2:443"
			c.Hub.Token = goodToken
			c.Hub.Protocol = "quic"
			c.Hub.KeepaliveInterval = Duration{1500 * time.Millisecond}
			return c
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			b, err := configfile.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			got := Default()
			if err := configfile.Decode(b, Meta, got); err != nil {
				t.Fatalf("printed config does not load: %v\n%s", err, b)
			}
			if !equality.Semantic.DeepEqual(got, d) {
				t.Fatalf("round trip: got %+v, want %+v\n%s", got, d, b)
			}
		})
	}
}

func TestDecodeHubSection(t *testing.T) {
	doc := `apiVersion: edgecore.config.skerry.io/v1alpha1
kind: EdgeCore
nodeName: edge-1
hub:
  server: 127.0.0.1:10000
  token: ` + goodToken + `
  keepaliveInterval: 5s
  backoff:
    max: 30s
`
	c := Default()
	if err := configfile.Decode([]byte(doc), Meta, c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Hub.KeepaliveInterval.Duration != 5*time.Second || c.Hub.Backoff.Max.Duration != 30*time.Second ||
		c.Hub.Backoff.Base.Duration != time.Second || c.Hub.Protocol != "websocket" {
		t.Fatalf("hub: %+v", c.Hub)
	}
	if got := c.Hub.BootstrapAddr(); got != "127.0.0.1:10002" {
		t.Fatalf("BootstrapAddr: got %q, want the server's host on 10002", got)
	}
	c.Hub.BootstrapServer = "cloud.example:8443"
	if got := c.Hub.BootstrapAddr(); got != "cloud.example:8443" {
		t.Fatalf("BootstrapAddr: got %q, want the configured one", got)
	}

	bad := strings.Replace(doc, "5s", "five seconds", 1)
	if err := configfile.Decode([]byte(bad), Meta, Default()); err == nil {
		t.Fatal("unparsable duration accepted")
	}
	bad = strings.Replace(doc, "backoff:", "backof:", 1)
	if err := configfile.Decode([]byte(bad), Meta, Default()); err == nil || !strings.Contains(err.Error(), "backof") {
		t.Fatalf("misspelt key: got %v, want it named", err)
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

		"server no port":       {func(c *EdgeCore) { c.Hub.Server = "10.0.0.1" }, "hub.server"},
		"server bad port":      {func(c *EdgeCore) { c.Hub.Server = "10.0.0.1:99999" }, "hub.server"},
		"server no host":       {func(c *EdgeCore) { c.Hub.Server = ":10000" }, "hub.server"},
		"server bad host":      {func(c *EdgeCore) { c.Hub.Server = "bad_host!:10000" }, "hub.server"},
		"server dns name":      {func(c *EdgeCore) { c.Hub.Server = "Cloud.Example.com:10000" }, ""},
		"server ipv6":          {func(c *EdgeCore) { c.Hub.Server = "[fd00::1]:10000" }, ""},
		"quic":                 {func(c *EdgeCore) { c.Hub.Protocol = "quic" }, ""},
		"unknown protocol":     {func(c *EdgeCore) { c.Hub.Protocol = "tcp" }, "hub.protocol"},
		"empty protocol":       {func(c *EdgeCore) { c.Hub.Protocol = "" }, "hub.protocol"},
		"bad bootstrap":        {func(c *EdgeCore) { c.Hub.BootstrapServer = "https://x:1" }, "hub.bootstrapServer"},
		"good token":           {func(c *EdgeCore) { c.Hub.Token = goodToken }, ""},
		"token no secret":      {func(c *EdgeCore) { c.Hub.Token = goodToken[:65] }, "hub.token"},
		"token short hash":     {func(c *EdgeCore) { c.Hub.Token = "abcd.secret" }, "hub.token"},
		"token no dot":         {func(c *EdgeCore) { c.Hub.Token = "justasecret" }, "hub.token"},
		"empty project":        {func(c *EdgeCore) { c.Hub.ProjectID = "" }, "hub.projectID"},
		"zero keepalive":       {func(c *EdgeCore) { c.Hub.KeepaliveInterval = Duration{} }, "hub.keepaliveInterval"},
		"negative base":        {func(c *EdgeCore) { c.Hub.Backoff.Base = Duration{-time.Second} }, "hub.backoff.base"},
		"max below base":       {func(c *EdgeCore) { c.Hub.Backoff.Max = Duration{time.Millisecond} }, "hub.backoff.max"},
		"several bad keys too": {func(c *EdgeCore) { c.Hub.Protocol = "x"; c.Hub.Server = "y" }, "hub.server"},
		"static pod path":      {func(c *EdgeCore) { c.Edged.Enable = true; c.Edged.StaticPodPath = "/etc/kubeedge/manifests" }, ""},
		"relative static path": {func(c *EdgeCore) { c.Edged.Enable = true; c.Edged.StaticPodPath = "manifests" }, "edged.staticPodPath"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := valid()
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

func TestTokenNeverInErrors(t *testing.T) {
	c := valid()
	c.Hub.Token = "not-hex-at-all.TOPSECRETVALUE"
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "TOPSECRETVALUE") || strings.Contains(err.Error(), "not-hex") {
		t.Fatalf("got %v: want an error that does not quote the token", err)
	}
}
