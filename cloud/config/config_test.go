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
