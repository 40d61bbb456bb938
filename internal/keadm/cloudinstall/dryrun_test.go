package cloudinstall

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/skerry-io/skerry/cloud/config"
	"github.com/skerry-io/skerry/pkg/configfile"
)

var listAll = metav1.ListOptions{}

func toYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDryRunClusterPrintsEveryManifest(t *testing.T) {
	f := newFakeCluster(t)
	var stdout, stderr bytes.Buffer
	_, err := Init(context.Background(), Options{
		Kubeconfig: "/nonexistent", DryRun: true, Image: "registry.example/cloudcore:v9",
		AdvertiseAddresses: []string{"203.0.113.5"}, DNSNames: []string{"cloud.example.com"},
		Set:    []string{"hub.nodeLimit=7", "hub.quic.enable=true"},
		Stdout: &stdout, Stderr: &stderr, Clients: f.Clients, Services: &fakeServices{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.dyn.Actions()); n != 0 {
		t.Errorf("dry run made %d API calls: %v", n, f.dyn.Actions())
	}
	objs, err := decodeManifests(stdout.Bytes())
	if err != nil {
		t.Fatalf("dry-run output does not parse: %v\n%s", err, stdout.String())
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+" "+o.GetName())
		if o.GetLabels()[ManagedByLabel] != ManagedBy {
			t.Errorf("%s %s lacks keadm's label", o.GetKind(), o.GetName())
		}
	}
	if !slices.Equal(got, wantApplyOrder) {
		t.Fatalf("dry-run kinds\n%q\nwant\n%q", got, wantApplyOrder)
	}
	cm := objs[len(objs)-3]
	cfgText := cm.Object["data"].(map[string]any)[ConfigFileName].(string)
	cfg := config.Default()
	if err := configfile.Decode([]byte(cfgText), config.Meta, cfg); err != nil {
		t.Fatalf("ConfigMap's cloudcore.yaml: %v", err)
	}
	if !slices.Equal(cfg.Bootstrap.AdvertiseAddresses, []string{"203.0.113.5"}) || !slices.Equal(cfg.Bootstrap.DNSNames, []string{"cloud.example.com"}) ||
		cfg.Hub.NodeLimit != 7 || !cfg.Hub.QUIC.Enable {
		t.Errorf("config in the ConfigMap: %+v", cfg)
	}
	svc := toYAML(t, objs[len(objs)-1].Object["spec"])
	for _, want := range []string{"port: 10000", "port: 10001\n  protocol: UDP", "port: 10002", "port: 10005"} {
		if !strings.Contains(svc, want) {
			t.Errorf("Service lacks %q:\n%s", want, svc)
		}
	}
	if !strings.Contains(toYAML(t, objs[len(objs)-2].Object), "image: registry.example/cloudcore:v9") {
		t.Error("Deployment does not use --image")
	}
	if stderr.Len() != 0 {
		t.Errorf("cluster dry run wrote to stderr: %s", stderr.String())
	}
}

func TestDryRunProcessPrintsConfigOnStderr(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgDir := filepath.Join(dir, "config")
	var stdout, stderr bytes.Buffer
	_, err := Init(context.Background(), Options{
		Kubeconfig: kc, Mode: ModeProcess, DryRun: true, ConfigDir: cfgDir, StateDir: filepath.Join(dir, "state"),
		Set: []string{"hub.keepaliveTimeout=45s"}, Stdout: &stdout, Stderr: &stderr, Services: &fakeServices{},
	})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeManifests(stdout.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if kinds := len(objs); kinds != len(wantApplyOrder)-3 || objs[len(objs)-1].GetKind() != "RoleBinding" {
		t.Errorf("process dry run printed %d objects, want no ConfigMap/Deployment/Service", kinds)
	}
	e := stderr.String()
	for _, want := range []string{filepath.Join(cfgDir, ConfigFileName), "kubeconfig: " + kc, "keepaliveTimeout: 45s"} {
		if !strings.Contains(e, want) {
			t.Errorf("stderr lacks %q:\n%s", want, e)
		}
	}
	if _, err := os.Stat(cfgDir); !os.IsNotExist(err) {
		t.Errorf("dry run created %s", cfgDir)
	}
}

func TestParseRecord(t *testing.T) {
	good := `{"mode":"process","binary":"/usr/local/bin/cloudcore","configFile":"/etc/kubeedge/config/cloudcore.yaml","createdDirs":["/etc/kubeedge"]}`
	r, err := parseRecord([]byte(good))
	if err != nil || r.Binary != "/usr/local/bin/cloudcore" || len(r.CreatedDirs) != 1 {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []struct{ doc, want string }{
		{`{"mode":"cluster","binary":"/b","configFile":"/c/cloudcore.yaml"}`, "mode"},
		{`{"mode":"process","binary":"b","configFile":"/c/cloudcore.yaml"}`, "binary"},
		{`{"mode":"process","binary":"/b","configFile":"/etc/passwd"}`, "configFile"},
		{`{"mode":"process","binary":"/b","configFile":"/c/../cloudcore.yaml"}`, "configFile"},
		{`{"mode":"process","binary":"/b","configFile":"/c/cloudcore.yaml","createdDirs":["/"]}`, "createdDirs"},
		{`{"mode":"process","binary":"/b","configFile":"/c/cloudcore.yaml","extra":1}`, "extra"},
		{`{"mode":"process","binary":"/b","configFile":"/c/cloudcore.yaml"} {}`, "trailing"},
		{strings.Repeat(" ", maxRecordSize+1), "over"},
	} {
		if _, err := parseRecord([]byte(bad.doc)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%.60s: err %v, want one naming %q", bad.doc, err, bad.want)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"mode":"process","binary":"/usr/bin/cloudcore","configFile":"/etc/kubeedge/config/cloudcore.yaml","createdDirs":["/a","/a/b"]}`))
	f.Add([]byte(`{"mode":"process"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"createdDirs":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseRecord(data)
		if err != nil {
			return
		}
		// Whatever is accepted names only absolute clean paths, and a cloudcore.yaml.
		for _, p := range append([]string{r.Binary, r.ConfigFile}, r.CreatedDirs...) {
			if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
				t.Fatalf("accepted path %q", p)
			}
		}
		if filepath.Base(r.ConfigFile) != ConfigFileName {
			t.Fatalf("accepted config file %q", r.ConfigFile)
		}
	})
}

func TestImageTagAndQuote(t *testing.T) {
	for in, want := range map[string]string{"v0.1.0": "v0.1.0", "v0.0.0-abc123def456-dirty": "v0.0.0-abc123def456-dirty",
		"": "latest", "v1+meta": "latest", "-x": "latest", strings.Repeat("a", 129): "latest"} {
		if got := ImageTag(in); got != want {
			t.Errorf("ImageTag(%q) = %q, want %q", in, got, want)
		}
	}
	if !strings.HasPrefix(DefaultImage(), DefaultRegistry+"/"+ImageRepository+":") {
		t.Errorf("DefaultImage %q", DefaultImage())
	}
	for in, want := range map[string]string{"/a/b.conf": "/a/b.conf", "/a b": "'/a b'", "/it's": `'/it'\''s'`, "": "''", "$(x)": "'$(x)'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
