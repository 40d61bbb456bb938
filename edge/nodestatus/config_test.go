package nodestatus

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

func TestDefaultConfigValid(t *testing.T) {
	cfg := testConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*Config)
		want   []string
	}{
		"node name":   {func(c *Config) { c.NodeName = "Edge_1" }, []string{`nodeName "Edge_1"`}},
		"empty name":  {func(c *Config) { c.NodeName = "" }, []string{"nodeName: empty"}},
		"bad IP":      {func(c *Config) { c.InternalIP = "10.0.0.300" }, []string{`internalIP "10.0.0.300": not an IP address`}},
		"unspecified": {func(c *Config) { c.InternalIP = "0.0.0.0" }, []string{"want a unicast address"}},
		"label key": {func(c *Config) { c.Labels = map[string]string{"bad key!": "v", "ok": "bad value!"} },
			[]string{`labels: key "bad key!"`, `labels["ok"]: value "bad value!"`}},
		"fixed label": {func(c *Config) { c.Labels = map[string]string{corev1.LabelArchStable: "sparc"} },
			[]string{`labels["kubernetes.io/arch"]: set by edgecore`}},
		"annotation": {func(c *Config) { c.Annotations = map[string]string{"-x": ""} }, []string{"annotations"}},
		"taint effect": {func(c *Config) { c.Taints = []corev1.Taint{{Key: "k", Effect: "NoWay"}} },
			[]string{`taints[0]: effect "NoWay": want NoSchedule, PreferNoSchedule or NoExecute`}},
		"taint key": {func(c *Config) {
			c.Taints = []corev1.Taint{{Key: "", Effect: corev1.TaintEffectNoSchedule}, {Key: "a", Value: "b c", Effect: corev1.TaintEffectNoSchedule}}
		}, []string{`taints[0]: key ""`, `taints[1]: value "b c"`}},
		"taint dup": {func(c *Config) {
			c.Taints = []corev1.Taint{{Key: "a", Effect: corev1.TaintEffectNoExecute}, {Key: "a", Value: "x", Effect: corev1.TaintEffectNoExecute}}
		}, []string{`taints[1]: duplicate key "a"`}},
		"reserved": {func(c *Config) {
			c.SystemReserved = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}
			c.KubeReserved = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("-1Mi")}
		}, []string{`systemReserved: resource "pods"`, "kubeReserved[memory] -1Mi"}},
		"max pods": {func(c *Config) { c.MaxPods = 0 }, []string{"maxPods 0"}},
		"data dir": {func(c *Config) { c.DataDir = "rel" }, []string{`dataDir "rel"`}},
		"frequencies": {func(c *Config) {
			c.StatusUpdateFrequency.Duration = 0
			c.StatusReportFrequency.Duration = -time.Second
			c.LeaseRenewInterval.Duration = time.Minute
		}, []string{"statusUpdateFrequency 0s", "statusReportFrequency -1s", "leaseRenewInterval 1m0s"}},
		"thresholds": {func(c *Config) {
			c.Pressure = PressureThresholds{MemoryAvailable: resource.MustParse("-1"), DiskFreePercent: 101, PIDPercent: 0}
		}, []string{"pressure.memoryAvailable", "pressure.diskFreePercent 101", "pressure.pidPercent 0"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestConfigYAML checks the form an operator writes, through the loader edgecore uses.
func TestConfigYAML(t *testing.T) {
	doc := `
nodeName: edge-7
dataDir: /data
labels: {zone: shelf-3}
taints:
- {key: dedicated, value: sensors, effect: NoSchedule}
internalIP: 192.0.2.7
maxPods: 30
systemReserved: {cpu: 100m, memory: 256Mi}
statusUpdateFrequency: 20s
statusReportFrequency: 10m
leaseRenewInterval: 15s
leaseDurationSeconds: 60
pressure: {memoryAvailable: 50Mi, diskFreePercent: 5, pidPercent: 95}
`
	cfg := testConfig()
	if err := yaml.UnmarshalStrict([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.StatusUpdateFrequency.Duration != 20*time.Second || cfg.Taints[0].Effect != corev1.TaintEffectNoSchedule ||
		cfg.SystemReserved.Memory().String() != "256Mi" || cfg.Pressure.PIDPercent != 95 || cfg.MaxPods != 30 {
		t.Errorf("decoded %+v", cfg)
	}
}
