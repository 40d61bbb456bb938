package edgejoin

import (
	"strings"
	"testing"
)

func TestBuildConfigFlags(t *testing.T) {
	cfg, err := BuildConfig(Options{
		CloudCoreIPPort: "cloud.example.com:10000", NodeName: "edge-1",
		RuntimeEndpoint: "unix:///run/skerry/containerd/containerd.sock",
		Labels:          "site=lab, example.com/tier=edge",
		Sets:            []string{"edged.cgroupRoot=/edge", "node.maxPods=20"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hub.Server != "cloud.example.com:10000" || cfg.Hub.Protocol != "websocket" || cfg.Hub.BootstrapAddr() != "cloud.example.com:10002" {
		t.Errorf("hub %+v", cfg.Hub)
	}
	if cfg.NodeName != "edge-1" || cfg.Runtime.Endpoint != "unix:///run/skerry/containerd/containerd.sock" {
		t.Errorf("node %q runtime %q", cfg.NodeName, cfg.Runtime.Endpoint)
	}
	if len(cfg.Node.Labels) != 2 || cfg.Node.Labels["site"] != "lab" || cfg.Node.Labels["example.com/tier"] != "edge" {
		t.Errorf("labels %v", cfg.Node.Labels)
	}
	if cfg.Edged.CgroupRoot != "/edge" || cfg.Node.MaxPods != 20 {
		t.Errorf("--set not applied: cgroupRoot %q maxPods %d", cfg.Edged.CgroupRoot, cfg.Node.MaxPods)
	}
	if cfg.Hub.Token != "" {
		t.Error("token in the config")
	}
}

func TestBuildConfigQUIC(t *testing.T) {
	cfg, err := BuildConfig(Options{CloudCoreIPPort: "10.0.0.1:10000", NodeName: "n", HubProtocol: "quic"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hub.Protocol != "quic" || cfg.Hub.Server != "10.0.0.1:10001" || cfg.Hub.BootstrapAddr() != "10.0.0.1:10002" {
		t.Fatalf("hub %+v bootstrap %s", cfg.Hub, cfg.Hub.BootstrapAddr())
	}
	// --set comes after the flags and wins.
	cfg, err = BuildConfig(Options{CloudCoreIPPort: "10.0.0.1:10000", NodeName: "n", HubProtocol: "quic", Sets: []string{"hub.server=10.0.0.1:20001"}})
	if err != nil || cfg.Hub.Server != "10.0.0.1:20001" {
		t.Fatalf("server %q, %v", cfg.Hub.Server, err)
	}
}

func TestBuildConfigErrors(t *testing.T) {
	base := Options{CloudCoreIPPort: "10.0.0.1:10000", NodeName: "edge-1"}
	for name, c := range map[string]struct {
		mod  func(*Options)
		want string
	}{
		"no cloud":        {func(o *Options) { o.CloudCoreIPPort = "" }, "--cloudcore-ipport is required"},
		"cloud no port":   {func(o *Options) { o.CloudCoreIPPort = "10.0.0.1" }, `--cloudcore-ipport "10.0.0.1"`},
		"bad port":        {func(o *Options) { o.CloudCoreIPPort = "10.0.0.1:99999" }, "hub.server"},
		"protocol":        {func(o *Options) { o.HubProtocol = "http" }, `--hub-protocol "http"`},
		"node name":       {func(o *Options) { o.NodeName = "Edge_1" }, `--edgenode-name "Edge_1"`},
		"label key":       {func(o *Options) { o.Labels = "bad key=v" }, `key "bad key"`},
		"label value":     {func(o *Options) { o.Labels = "k=" + strings.Repeat("v", 64) }, "value"},
		"label no equals": {func(o *Options) { o.Labels = "k" }, `--labels "k"`},
		"label twice":     {func(o *Options) { o.Labels = "k=a,k=b" }, "given twice"},
		"set unknown":     {func(o *Options) { o.Sets = []string{"edged.nope=1"} }, "--set edged.nope"},
		"set shape":       {func(o *Options) { o.Sets = []string{"edged.cgroupRoot"} }, "want key=value"},
		"set invalid":     {func(o *Options) { o.Sets = []string{"metaServer.address=0.0.0.0:10550"} }, "metaServer.address"},
		"set token":       {func(o *Options) { o.Sets = []string{"hub.token=" + testToken} }, "--token"},
		"runtime":         {func(o *Options) { o.RuntimeEndpoint = "/run/containerd.sock" }, "runtime.endpoint"},
	} {
		o := base
		c.mod(&o)
		_, err := BuildConfig(o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one containing %q", name, err, c.want)
		}
	}
}

func TestValidateIgnore(t *testing.T) {
	if err := validateIgnore([]string{"ports", "cgroups", "all"}); err != nil {
		t.Fatal(err)
	}
	if err := validateIgnore([]string{"port"}); err == nil || !strings.Contains(err.Error(), `"port"`) || !strings.Contains(err.Error(), "ports") {
		t.Fatalf("err %v", err)
	}
}

func FuzzParseLabels(f *testing.F) {
	f.Add("a=b,c=d")
	f.Add("example.com/x=y, ,z=")
	f.Add("=,==")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseLabels(s)
		if err != nil {
			return
		}
		for k := range m {
			if k == "" || strings.ContainsAny(k, ",= ") {
				t.Fatalf("ParseLabels(%q) accepted key %q", s, k)
			}
		}
	})
}
