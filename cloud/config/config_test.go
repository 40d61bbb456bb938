package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skerry-io/skerry/pkg/configfile"
)

func TestDefaultIsValidAndRoundTrips(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	b, err := configfile.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	got := &CloudCore{}
	if err := configfile.Decode(b, Meta, got); err != nil {
		t.Fatalf("printed default config does not load: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(got, d) {
		t.Fatalf("round trip: got %+v, want %+v", got, d)
	}
	for _, want := range []string{"keepaliveTimeout: 30s", "certValidity: 8760h0m0s", "address: 0.0.0.0:10000", "address: 127.0.0.1:10006", "namespace: kubeedge"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("default config lacks %q:\n%s", want, b)
		}
	}
}

func TestDecodeDurationsAndLists(t *testing.T) {
	doc := `apiVersion: cloudcore.config.skerry.io/v1alpha1
kind: CloudCore
hub:
  keepaliveTimeout: 45s
  quic: {enable: true}
bootstrap:
  advertiseAddresses: [192.0.2.10]
  dnsNames: [cloud.example.com]
  certValidity: 720h
`
	c := Default()
	if err := configfile.Decode([]byte(doc), Meta, c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Hub.KeepaliveTimeout.Duration != 45*time.Second || !c.Hub.QUIC.Enable || c.Hub.QUIC.Address != "0.0.0.0:10001" ||
		c.Bootstrap.CertValidity.Duration != 720*time.Hour || len(c.Bootstrap.AdvertiseAddresses) != 1 || len(c.Bootstrap.DNSNames) != 1 {
		t.Fatalf("decoded %+v", c)
	}
	if err := configfile.Decode([]byte(strings.Replace(doc, "keepaliveTimeout", "keepAliveTimeout", 1)), Meta, Default()); err == nil ||
		!strings.Contains(err.Error(), "keepAliveTimeout") {
		t.Fatalf("misspelt key: %v", err)
	}
}

func TestValidateNamesEachBadKey(t *testing.T) {
	dir := t.TempDir()
	c := Default()
	c.KubeAPI.Kubeconfig = dir
	c.KubeAPI.QPS = 0
	c.KubeAPI.Burst = 0
	c.Namespace = "Not_A_Namespace"
	c.Hub.WebSocket.Address = "nonsense"
	c.Hub.QUIC = Listener{Enable: true, Address: "0.0.0.0:99999"}
	c.Hub.NodeLimit = 0
	c.Hub.KeepaliveTimeout.Duration = 0
	c.Hub.RateLimit = RateLimit{}
	c.Bootstrap.Address = ""
	c.Bootstrap.AdvertiseAddresses = []string{"192.0.2.1", "not-an-ip"}
	c.Bootstrap.DNSNames = []string{"ok.example.com", "Bad_Name"}
	c.Bootstrap.CertValidity.Duration = time.Minute
	c.Admin.Address = "127.0.0.1"
	err := c.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, key := range []string{"kubeAPI.kubeconfig", "kubeAPI.qps", "kubeAPI.burst", "namespace",
		"hub.websocket.address", "hub.quic.address", "hub.nodeLimit", "hub.keepaliveTimeout",
		"hub.rateLimit.qps", "hub.rateLimit.burst", "bootstrap.address", "bootstrap.advertiseAddresses[1]",
		"bootstrap.dnsNames[1]", "bootstrap.certValidity", "admin.address"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
	for _, key := range []string{"advertiseAddresses[0]", "dnsNames[0]"} {
		if strings.Contains(err.Error(), key) {
			t.Errorf("error %q names valid %s", err, key)
		}
	}

	c = Default()
	c.Hub.WebSocket.Enable = false
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "hub.websocket.enable") {
		t.Fatalf("no transport: %v", err)
	}
	c.Hub.WebSocket.Address = "garbage" // disabled listeners are not checked
	c.Hub.QUIC.Enable = true
	if err := c.Validate(); err != nil {
		t.Fatalf("quic only: %v", err)
	}

	c = Default()
	c.KubeAPI.Kubeconfig = filepath.Join(dir, "missing")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing kubeconfig: %v", err)
	}
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.KubeAPI.Kubeconfig = kc
	if err := c.Validate(); err != nil {
		t.Fatalf("existing kubeconfig: %v", err)
	}
}

func TestValidateConflictsAndCertificateNames(t *testing.T) {
	cases := map[string]struct {
		mutate func(*CloudCore)
		want   string // empty: valid
	}{
		"defaults": {func(*CloudCore) {}, ""},
		"admin on bootstrap port": {func(c *CloudCore) { c.Admin.Address = "127.0.0.1:10002" },
			`admin.address: "127.0.0.1:10002" is also bootstrap.address`},
		"admission on websocket port": {func(c *CloudCore) { c.Admission.Address = "10.0.0.1:10000" },
			`admission.address: "10.0.0.1:10000" is also hub.websocket.address`},
		"bootstrap on websocket port, empty host": {func(c *CloudCore) { c.Bootstrap.Address = ":10000" },
			"bootstrap.address"},
		"same port, different specific hosts": {func(c *CloudCore) {
			c.Bootstrap.Address = "10.0.0.1:10002"
			c.Admin.Address = "127.0.0.1:10002"
		}, ""},
		"same port, ipv6 wildcard": {func(c *CloudCore) { c.Admin.Address = "[::]:10005" }, "admin.address"},
		"disabled admission may share": {func(c *CloudCore) {
			c.Admission.Enable = false
			c.Admission.Address = "0.0.0.0:10002"
		}, ""},
		"disabled websocket may share": {func(c *CloudCore) {
			c.Hub.WebSocket.Enable = false
			c.Hub.QUIC.Enable = true
			c.Hub.WebSocket.Address = "0.0.0.0:10002"
		}, ""},
		// QUIC listens on UDP: the same port number as a TCP listener is no conflict.
		"quic on websocket port": {func(c *CloudCore) {
			c.Hub.QUIC = Listener{Enable: true, Address: "0.0.0.0:10000"}
		}, ""},
		"port 0 twice": {func(c *CloudCore) {
			c.Bootstrap.Address = "127.0.0.1:0"
			c.Admin.Address = "127.0.0.1:0"
		}, ""},
		"admission url dns name not in cert": {func(c *CloudCore) { c.Admission.URL = "https://cloud.example.com:10005/mutate" },
			`admission.url: host "cloud.example.com" is not in the serving certificate; add it to bootstrap.dnsNames`},
		"admission url dns name in cert": {func(c *CloudCore) {
			c.Admission.URL = "https://cloud.example.com:10005/mutate"
			c.Bootstrap.DNSNames = []string{"cloud.example.com"}
		}, ""},
		"admission url localhost": {func(c *CloudCore) { c.Admission.URL = "https://localhost:10005/m" }, ""},
		"admission url ip not advertised": {func(c *CloudCore) {
			c.Admission.URL = "https://192.0.2.9:10005/m"
			c.Bootstrap.AdvertiseAddresses = []string{"192.0.2.1"}
		}, "admission.url: host 192.0.2.9 is not in the serving certificate; add it to bootstrap.advertiseAddresses"},
		"admission url ip advertised": {func(c *CloudCore) {
			c.Admission.URL = "https://192.0.2.1:10005/m"
			c.Bootstrap.AdvertiseAddresses = []string{"192.0.2.1"}
		}, ""},
		// Without explicit advertise addresses the certificate holds the host's, unknown here.
		"admission url ip, addresses detected at start": {func(c *CloudCore) { c.Admission.URL = "https://192.0.2.9:10005/m" }, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
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
	for _, want := range []string{"kubeconfig:", "websocket:", "quic:", "advertiseAddresses:"} {
		if !strings.Contains(m, want) {
			t.Errorf("minimal config lacks %q:\n%s", want, m)
		}
	}
	for _, unwanted := range []string{"qps", "nodeLimit", "admin", "certValidity"} {
		if strings.Contains(m, unwanted) {
			t.Errorf("minimal config has %q, a key operators rarely set:\n%s", unwanted, m)
		}
	}
	// As printed, it decodes strictly but the placeholders are not valid values.
	c := Default()
	if err := configfile.Decode([]byte(m), Meta, c); err != nil {
		t.Fatalf("minimal config does not decode: %v\n%s", err, m)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "kubeAPI.kubeconfig") ||
		!strings.Contains(err.Error(), "bootstrap.advertiseAddresses[0]") {
		t.Fatalf("unfilled placeholders: got %v, want kubeconfig and advertiseAddresses named", err)
	}

	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	filled := strings.NewReplacer(PlaceholderKubeconfig, kc, PlaceholderAdvertiseAddress, "192.0.2.10").Replace(m)
	c = Default()
	if err := configfile.Decode([]byte(filled), Meta, c); err != nil {
		t.Fatalf("filled minimal config does not decode: %v\n%s", err, filled)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("filled minimal config invalid: %v\n%s", err, filled)
	}
	if c.KubeAPI.Kubeconfig != kc || len(c.Bootstrap.AdvertiseAddresses) != 1 || c.Bootstrap.AdvertiseAddresses[0] != "192.0.2.10" {
		t.Fatalf("filled values not applied: %+v", c)
	}
	d := Default()
	if c.Hub != d.Hub || c.Admin != d.Admin || c.Namespace != d.Namespace {
		t.Fatalf("keys left out of the minimal config lost their defaults: %+v", c)
	}
}
