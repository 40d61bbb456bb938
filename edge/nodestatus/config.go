package nodestatus

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Defaults, as the kubelet's where it has one.
const (
	DefaultMaxPods               = 110
	DefaultStatusUpdateFrequency = 10 * time.Second
	DefaultStatusReportFrequency = 5 * time.Minute
	DefaultLeaseRenewInterval    = 10 * time.Second
	DefaultLeaseDurationSeconds  = 40
	DefaultDiskFreePercent       = 10
	DefaultPIDPercent            = 90
	// KubeletPort is the port the node announces in status.daemonEndpoints (edged's).
	KubeletPort = 10350
	// EdgeRoleLabel marks the node as an edge node; the cloud sets it too (docs/protocol.md).
	EdgeRoleLabel = "node-role.kubernetes.io/edge"
)

// DefaultMemoryAvailable is the memory-pressure threshold: the kubelet's default hard
// eviction threshold memory.available<100Mi.
func DefaultMemoryAvailable() resource.Quantity { return resource.MustParse("100Mi") }

// Config configures the reporter. Field names follow the kubelet's configuration where one
// exists, so an operator recognises them; durations are strings such as "10s".
// Start from [DefaultConfig]: zero values are taken literally and mostly refused by Validate.
type Config struct {
	// NodeName is the node's name in Kubernetes (a DNS-1123 subdomain).
	NodeName string `json:"nodeName" yaml:"nodeName"`
	// Labels are set on the node at registration, besides the ones the node always carries
	// (EdgeRoleLabel, kubernetes.io/hostname, kubernetes.io/os, kubernetes.io/arch; only
	// kubernetes.io/hostname may be overridden here).
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	// Annotations are set on the node at registration.
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
	// Taints are the node's spec.taints at registration.
	Taints []corev1.Taint `json:"taints,omitempty" yaml:"taints,omitempty"`
	// InternalIP overrides the detected InternalIP address (the default route's interface).
	InternalIP string `json:"internalIP,omitempty" yaml:"internalIP,omitempty"`
	// MaxPods is the node's pod capacity.
	MaxPods int32 `json:"maxPods" yaml:"maxPods"`
	// SystemReserved and KubeReserved are subtracted from capacity to give allocatable, as
	// the kubelet's flags of the same names (cpu, memory, ephemeral-storage).
	SystemReserved corev1.ResourceList `json:"systemReserved,omitempty" yaml:"systemReserved,omitempty"`
	KubeReserved   corev1.ResourceList `json:"kubeReserved,omitempty" yaml:"kubeReserved,omitempty"`
	// DataDir is where pod data lives; its file system is the node's ephemeral storage.
	DataDir string `json:"dataDir" yaml:"dataDir"`
	// StatusUpdateFrequency is how often the status is computed (and sent if it changed).
	StatusUpdateFrequency metav1.Duration `json:"statusUpdateFrequency" yaml:"statusUpdateFrequency"`
	// StatusReportFrequency is the longest time between two status reports when nothing
	// changes. At least StatusUpdateFrequency.
	StatusReportFrequency metav1.Duration `json:"statusReportFrequency" yaml:"statusReportFrequency"`
	// LeaseRenewInterval is how often the heartbeat Lease is renewed; shorter than the
	// lease duration, or the node looks dead between two renewals.
	LeaseRenewInterval metav1.Duration `json:"leaseRenewInterval" yaml:"leaseRenewInterval"`
	// LeaseDurationSeconds is the Lease's spec.leaseDurationSeconds.
	LeaseDurationSeconds int32 `json:"leaseDurationSeconds" yaml:"leaseDurationSeconds"`
	// Pressure sets when the MemoryPressure, DiskPressure and PIDPressure conditions turn True.
	Pressure PressureThresholds `json:"pressure" yaml:"pressure"`
}

// PressureThresholds are simple fixed thresholds (no eviction: edgecore only reports).
type PressureThresholds struct {
	// MemoryAvailable: MemoryPressure when MemAvailable falls below it. "0" disables.
	MemoryAvailable resource.Quantity `json:"memoryAvailable" yaml:"memoryAvailable"`
	// DiskFreePercent: DiskPressure when less than this percentage of DataDir's file system
	// is free (0-100; 0 disables).
	DiskFreePercent int32 `json:"diskFreePercent" yaml:"diskFreePercent"`
	// PIDPercent: PIDPressure when processes and threads exceed this percentage of
	// kernel.pid_max (1-100; 100 disables).
	PIDPercent int32 `json:"pidPercent" yaml:"pidPercent"`
}

// DefaultConfig returns the defaults for the node nodeName with its data under dataDir.
func DefaultConfig(nodeName, dataDir string) Config {
	return Config{
		NodeName:              nodeName,
		DataDir:               dataDir,
		MaxPods:               DefaultMaxPods,
		StatusUpdateFrequency: metav1.Duration{Duration: DefaultStatusUpdateFrequency},
		StatusReportFrequency: metav1.Duration{Duration: DefaultStatusReportFrequency},
		LeaseRenewInterval:    metav1.Duration{Duration: DefaultLeaseRenewInterval},
		LeaseDurationSeconds:  DefaultLeaseDurationSeconds,
		Pressure: PressureThresholds{
			MemoryAvailable: DefaultMemoryAvailable(),
			DiskFreePercent: DefaultDiskFreePercent,
			PIDPercent:      DefaultPIDPercent,
		},
	}
}

// Validate reports every invalid setting, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.NodeName == "" {
		add("nodeName: empty; set it to this node's Kubernetes name")
	} else if msgs := validation.IsDNS1123Subdomain(c.NodeName); len(msgs) > 0 {
		add("nodeName %q: %s", c.NodeName, strings.Join(msgs, "; "))
	}
	for _, k := range sortedKeys(c.Labels) {
		v := c.Labels[k]
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			add("labels: key %q: %s", k, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			add("labels[%q]: value %q: %s", k, v, strings.Join(msgs, "; "))
		}
		if want, fixed := fixedLabel(k); fixed && v != want {
			add("labels[%q]: set by edgecore to %q; remove it from the configuration", k, want)
		}
	}
	if errList := apivalidation.ValidateAnnotations(c.Annotations, field.NewPath("annotations")); len(errList) > 0 {
		errs = append(errs, errList.ToAggregate())
	}
	errs = append(errs, validateTaints(c.Taints)...)
	if c.InternalIP != "" {
		if ip := net.ParseIP(c.InternalIP); ip == nil {
			add("internalIP %q: not an IP address", c.InternalIP)
		} else if ip.IsUnspecified() || ip.IsMulticast() {
			add("internalIP %q: want a unicast address", c.InternalIP)
		}
	}
	if c.MaxPods < 1 {
		add("maxPods %d: want at least 1", c.MaxPods)
	}
	errs = append(errs, validateReserved("systemReserved", c.SystemReserved)...)
	errs = append(errs, validateReserved("kubeReserved", c.KubeReserved)...)
	if !filepath.IsAbs(c.DataDir) {
		add("dataDir %q: want an absolute path", c.DataDir)
	}
	if d := c.StatusUpdateFrequency.Duration; d <= 0 {
		add("statusUpdateFrequency %s: want a positive duration", d)
	}
	if d := c.StatusReportFrequency.Duration; d < c.StatusUpdateFrequency.Duration || d <= 0 {
		add("statusReportFrequency %s: want at least statusUpdateFrequency (%s)", d, c.StatusUpdateFrequency.Duration)
	}
	if c.LeaseDurationSeconds < 1 {
		add("leaseDurationSeconds %d: want at least 1", c.LeaseDurationSeconds)
	}
	if d := c.LeaseRenewInterval.Duration; d <= 0 || d >= time.Duration(c.LeaseDurationSeconds)*time.Second {
		add("leaseRenewInterval %s: want a positive duration shorter than leaseDurationSeconds (%ds)", d, c.LeaseDurationSeconds)
	}
	if q := c.Pressure.MemoryAvailable; q.Sign() < 0 {
		add("pressure.memoryAvailable %s: want a non-negative quantity", q.String())
	}
	if p := c.Pressure.DiskFreePercent; p < 0 || p > 100 {
		add("pressure.diskFreePercent %d: want 0-100", p)
	}
	if p := c.Pressure.PIDPercent; p < 1 || p > 100 {
		add("pressure.pidPercent %d: want 1-100", p)
	}
	return errors.Join(errs...)
}

// fixedLabel reports whether key is a label edgecore sets from facts, and its value.
// Configuring another value would make the scheduler place pods on the wrong OS or
// architecture, or hide that the node is an edge node.
func fixedLabel(key string) (value string, fixed bool) {
	switch key {
	case corev1.LabelOSStable:
		return runtime.GOOS, true
	case corev1.LabelArchStable:
		return runtime.GOARCH, true
	case EdgeRoleLabel:
		return "", true
	}
	return "", false
}

func validateTaints(taints []corev1.Taint) []error {
	var errs []error
	type keyEffect struct {
		key    string
		effect corev1.TaintEffect
	}
	seen := map[keyEffect]bool{}
	for i, t := range taints {
		if msgs := validation.IsQualifiedName(t.Key); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("taints[%d]: key %q: %s", i, t.Key, strings.Join(msgs, "; ")))
		}
		if msgs := validation.IsValidLabelValue(t.Value); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("taints[%d]: value %q: %s", i, t.Value, strings.Join(msgs, "; ")))
		}
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			errs = append(errs, fmt.Errorf("taints[%d]: effect %q: want NoSchedule, PreferNoSchedule or NoExecute", i, t.Effect))
		}
		ke := keyEffect{t.Key, t.Effect}
		if seen[ke] {
			errs = append(errs, fmt.Errorf("taints[%d]: duplicate key %q with effect %q", i, t.Key, t.Effect))
		}
		seen[ke] = true
	}
	return errs
}

func validateReserved(name string, rl corev1.ResourceList) []error {
	var errs []error
	for _, r := range sortedKeys(rl) {
		q := rl[r]
		switch r {
		case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
		default:
			errs = append(errs, fmt.Errorf("%s: resource %q: want one of cpu, memory, ephemeral-storage", name, r))
		}
		if q.Sign() < 0 {
			errs = append(errs, fmt.Errorf("%s[%s] %s: want a non-negative quantity", name, r, q.String()))
		}
	}
	return errs
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
