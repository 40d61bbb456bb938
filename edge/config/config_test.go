package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skerry-io/skerry/edge/eventbus"
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

func TestValidateFilesAndConflicts(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		mutate func(*EdgeCore)
		want   string // empty: valid
	}{
		"server is a URL": {func(c *EdgeCore) { c.Hub.Server = "wss://10.0.0.1:10000" },
			`hub.server "wss://10.0.0.1:10000": want host:port without a scheme`},
		"quic URL": {func(c *EdgeCore) { c.Hub.Protocol = "quic"; c.Hub.Server = "quic://10.0.0.1:10001" }, "hub.protocol chooses"},

		"data dir missing is fine": {func(c *EdgeCore) { c.DataDir = filepath.Join(dir, "new") }, ""},
		"data dir exists":          {func(c *EdgeCore) { c.DataDir = dir }, ""},
		"data dir is a file":       {func(c *EdgeCore) { c.DataDir = file }, "dataDir: " + file + " exists and is not a directory"},
		"static pod dir missing":   {func(c *EdgeCore) { c.Edged.StaticPodPath = filepath.Join(dir, "manifests") }, ""},
		"static pod path is a file": {func(c *EdgeCore) { c.Edged.StaticPodPath = file },
			"edged.staticPodPath: " + file + " exists and is not a directory"},
		"static pod file, edged off": {func(c *EdgeCore) { c.Edged.Enable = false; c.Edged.StaticPodPath = file }, ""},

		"dmi group missing": {func(c *EdgeCore) { c.DeviceTwin.DMI.Group = "no-such-group-skerry" },
			`deviceTwin.dmi.group "no-such-group-skerry"`},
		"dmi group numeric": {func(c *EdgeCore) { c.DeviceTwin.DMI.Group = "4242" }, ""},
		"dmi group root":    {func(c *EdgeCore) { c.DeviceTwin.DMI.Group = "root" }, ""},

		"device twin without bus": {func(c *EdgeCore) { c.EventBus.Enable = false },
			"deviceTwin.enable: the device twin answers on MQTT; enable eventBus too"},
		"external broker without URL": {func(c *EdgeCore) { c.EventBus.Mode = eventbus.ModeExternal; c.EventBus.External.URL = "" },
			"eventBus: external.url: empty"},
		"external broker password file missing": {func(c *EdgeCore) {
			c.EventBus.Mode = eventbus.ModeExternal
			c.EventBus.External.Username = "edge"
			c.EventBus.External.PasswordFile = filepath.Join(dir, "missing")
		}, "external.passwordFile"},

		"metaserver on edged port": {func(c *EdgeCore) { c.MetaServer.Address = "127.0.0.1:10350" },
			`edged.server.address "127.0.0.1:10350": also metaServer.address ("127.0.0.1:10350"); give each listener its own port`},
		"broker on metaserver port via localhost": {func(c *EdgeCore) { c.EventBus.Internal.Address = "localhost:10550" },
			`eventBus.internal.address "localhost:10550": also metaServer.address`},
		"wildcard overlaps loopback": {func(c *EdgeCore) {
			c.Edged.Server.Address = "0.0.0.0:10550"
			c.Edged.Server.AllowRemote = true
		}, "edged.server.address"},
		"same port, different loopback hosts": {func(c *EdgeCore) { c.Edged.Server.Address = "127.0.0.2:10550" }, ""},
		"edged server off may share":          {func(c *EdgeCore) { c.Edged.Server.Enable = false; c.Edged.Server.Address = "127.0.0.1:10550" }, ""},
		"external-only bus may share": {func(c *EdgeCore) {
			c.EventBus.Mode = eventbus.ModeExternal
			c.EventBus.Internal.Address = "127.0.0.1:10550"
		}, ""},
		"port 0 twice": {func(c *EdgeCore) {
			c.MetaServer.Address = "127.0.0.1:0"
			c.Edged.Server.Address = "127.0.0.1:0"
		}, ""},
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

func TestMinimalLoadsAndValidatesOnceFilled(t *testing.T) {
	m := string(Minimal())
	for _, want := range []string{"nodeName:", "dataDir:", "server:", "protocol: websocket", "token:", "endpoint:"} {
		if !strings.Contains(m, want) {
			t.Errorf("minimal config lacks %q:\n%s", want, m)
		}
	}
	for _, unwanted := range []string{"metaServer", "eventBus", "projectID", "backoff"} {
		if strings.Contains(m, unwanted) {
			t.Errorf("minimal config has %q, a key operators rarely set:\n%s", unwanted, m)
		}
	}
	c := Default()
	if err := configfile.Decode([]byte(m), Meta, c); err != nil {
		t.Fatalf("minimal config does not decode: %v\n%s", err, m)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "hub.server") || !strings.Contains(err.Error(), "hub.token") {
		t.Fatalf("unfilled placeholders: got %v, want hub.server and hub.token named", err)
	}

	filled := strings.NewReplacer(PlaceholderCloudCoreIP, "10.0.0.1", PlaceholderToken, goodToken,
		PlaceholderNodeName, "edge-node").Replace(m)
	c = Default()
	if err := configfile.Decode([]byte(filled), Meta, c); err != nil {
		t.Fatalf("filled minimal config does not decode: %v\n%s", err, filled)
	}
	if c.NodeName == "" || len(validation.IsDNS1123Subdomain(c.NodeName)) > 0 {
		c.NodeName = "edge-node" // the test machine's host name is what Minimal printed
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("filled minimal config invalid: %v\n%s", err, filled)
	}
	if c.Hub.Server != "10.0.0.1:10000" || c.Hub.Token != goodToken {
		t.Fatalf("filled values not applied: %+v", c.Hub)
	}
	if !equality.Semantic.DeepEqual(c.Node, Default().Node) || c.Hub.ProjectID != DefaultProjectID {
		t.Fatalf("keys left out of the minimal config lost their defaults: %+v", c)
	}
}
