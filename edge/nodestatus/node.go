package nodestatus

import (
	"maps"
	"runtime"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Condition reasons. The kubelet's say "Kubelet…"; ours say "Edge…" so that an operator
// sees which agent posted them.
const (
	ReasonReady                       = "EdgeReady"
	ReasonContainerRuntimeUnreachable = "ContainerRuntimeUnreachable"
	ReasonSufficientMemory            = "EdgeHasSufficientMemory"
	ReasonInsufficientMemory          = "EdgeHasInsufficientMemory"
	ReasonNoDiskPressure              = "EdgeHasNoDiskPressure"
	ReasonDiskPressure                = "EdgeHasDiskPressure"
	ReasonSufficientPID               = "EdgeHasSufficientPID"
	ReasonInsufficientPID             = "EdgeHasInsufficientPID"
	// ReasonStatsUnavailable: the figure a pressure condition is computed from could not be
	// read, so the condition is Unknown rather than a guess.
	ReasonStatsUnavailable = "EdgeStatsUnavailable"
)

// builtinConditions are the conditions the reporter computes itself, in the kubelet's order.
func builtinConditions() []corev1.NodeConditionType {
	return []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeReady}
}

// observation is what one status computation measured, before it is merged with the
// reporter's history (transition times, last known values).
type observation struct {
	dyn            dynamicFacts
	noRuntime      bool
	runtimeName    string
	runtimeVersion string
	runtimeErr     error
	images         []corev1.ContainerImage
	imagesErr      error
}

// conditions derives the built-in conditions from an observation. Times are left zero; the
// messages never carry live figures, so that a condition changes only when its status or
// reason does (figures would make every status look changed).
func (cfg *Config) conditions(st staticFacts, o observation) []corev1.NodeCondition {
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg}
	}
	var out []corev1.NodeCondition
	d := o.dyn
	p := cfg.Pressure

	switch {
	case d.MemErr != nil:
		out = append(out, cond(corev1.NodeMemoryPressure, corev1.ConditionUnknown, ReasonStatsUnavailable, "cannot read available memory: "+d.MemErr.Error()))
	case !p.MemoryAvailable.IsZero() && d.MemAvailable < p.MemoryAvailable.Value():
		out = append(out, cond(corev1.NodeMemoryPressure, corev1.ConditionTrue, ReasonInsufficientMemory, "edgecore has insufficient memory available: less than "+p.MemoryAvailable.String()))
	default:
		out = append(out, cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, ReasonSufficientMemory, "edgecore has sufficient memory available"))
	}

	switch {
	case d.FSErr != nil:
		out = append(out, cond(corev1.NodeDiskPressure, corev1.ConditionUnknown, ReasonStatsUnavailable, "cannot read the data directory's file system: "+d.FSErr.Error()))
	case float64(d.FS.Free) < float64(d.FS.Total)*float64(p.DiskFreePercent)/100:
		out = append(out, cond(corev1.NodeDiskPressure, corev1.ConditionTrue, ReasonDiskPressure, "edgecore has disk pressure: the data directory's file system is almost full"))
	default:
		out = append(out, cond(corev1.NodeDiskPressure, corev1.ConditionFalse, ReasonNoDiskPressure, "edgecore has no disk pressure"))
	}

	switch {
	case d.ProcsErr != nil:
		out = append(out, cond(corev1.NodePIDPressure, corev1.ConditionUnknown, ReasonStatsUnavailable, "cannot count processes: "+d.ProcsErr.Error()))
	case st.PIDMax <= 0:
		out = append(out, cond(corev1.NodePIDPressure, corev1.ConditionUnknown, ReasonStatsUnavailable, "cannot read kernel.pid_max"))
	case d.Procs*100 > st.PIDMax*int64(p.PIDPercent):
		out = append(out, cond(corev1.NodePIDPressure, corev1.ConditionTrue, ReasonInsufficientPID, "edgecore has insufficient PIDs available"))
	default:
		out = append(out, cond(corev1.NodePIDPressure, corev1.ConditionFalse, ReasonSufficientPID, "edgecore has sufficient PIDs available"))
	}

	switch {
	case o.noRuntime:
		out = append(out, cond(corev1.NodeReady, corev1.ConditionTrue, ReasonReady, "edgecore is posting ready status; no container runtime is configured, pods cannot start"))
	case o.runtimeErr != nil:
		out = append(out, cond(corev1.NodeReady, corev1.ConditionFalse, ReasonContainerRuntimeUnreachable, "container runtime is not answering: "+o.runtimeErr.Error()))
	default:
		out = append(out, cond(corev1.NodeReady, corev1.ConditionTrue, ReasonReady, "edgecore is posting ready status"))
	}
	return out
}

// mergeConditions sets the times of next from prev: the heartbeat is now, and the
// transition time moves only when the status changes. It returns the conditions whose
// status changed (for logging).
func mergeConditions(prev map[corev1.NodeConditionType]corev1.NodeCondition, next []corev1.NodeCondition, now time.Time) (changed []corev1.NodeCondition) {
	t := metav1.NewTime(now).Rfc3339Copy() // the precision that survives JSON
	for i := range next {
		c := &next[i]
		c.LastHeartbeatTime = t
		if p, ok := prev[c.Type]; ok && p.Status == c.Status {
			c.LastTransitionTime = p.LastTransitionTime
			continue
		}
		c.LastTransitionTime = t
		changed = append(changed, *c)
	}
	return changed
}

// capacity is what the machine has; the figures are static, or the last known value, so
// that a transient read error does not make a resource vanish from the node.
func (cfg *Config) capacity(st staticFacts, fsTotal uint64) corev1.ResourceList {
	rl := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(st.CPUs), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(st.MemoryTotal, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(int64(cfg.MaxPods), resource.DecimalSI),
	}
	if fsTotal > 0 && fsTotal <= 1<<62 {
		rl[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(fsTotal), resource.BinarySI)
	}
	return rl
}

// allocatable is capacity minus both reservations, never below zero.
func (cfg *Config) allocatable(capacity corev1.ResourceList) corev1.ResourceList {
	out := capacity.DeepCopy()
	for name, q := range out {
		for _, rl := range []corev1.ResourceList{cfg.SystemReserved, cfg.KubeReserved} {
			if r, ok := rl[name]; ok {
				q.Sub(r)
			}
		}
		if q.Sign() < 0 {
			q = *resource.NewQuantity(0, q.Format)
		}
		out[name] = q
	}
	return out
}

// addresses lists InternalIP (when known) and Hostname, in the kubelet's order.
func addresses(ip, hostname string) []corev1.NodeAddress {
	var out []corev1.NodeAddress
	if ip != "" {
		out = append(out, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	if hostname != "" {
		out = append(out, corev1.NodeAddress{Type: corev1.NodeHostName, Address: hostname})
	}
	return out
}

// nodeInfo is status.nodeInfo.
func nodeInfo(st staticFacts, kubeletVersion, runtimeVersion string) corev1.NodeSystemInfo {
	return corev1.NodeSystemInfo{
		MachineID:               st.MachineID,
		SystemUUID:              st.SystemUUID,
		BootID:                  st.BootID,
		KernelVersion:           st.KernelVersion,
		OSImage:                 st.OSImage,
		ContainerRuntimeVersion: runtimeVersion,
		KubeletVersion:          kubeletVersion,
		OperatingSystem:         runtime.GOOS,
		Architecture:            runtime.GOARCH,
	}
}

// labels are the registration labels: the configured ones, then the ones edgecore always
// sets. kubernetes.io/hostname is the node's name unless configured: an edge node's name is
// set in its configuration (as KubeEdge's), workloads select nodes by this label
// (`nodeSelector: {kubernetes.io/hostname: edge-1}`), and several edge nodes may share a
// host. A node name that is no valid label value (longer than 63) falls back to the host's.
func (cfg *Config) labels(hostname string) map[string]string {
	out := make(map[string]string, len(cfg.Labels)+4)
	for _, h := range []string{cfg.NodeName, hostname} {
		if h != "" && len(validation.IsValidLabelValue(h)) == 0 {
			out[corev1.LabelHostname] = h
			break
		}
	}
	maps.Copy(out, cfg.Labels)
	out[EdgeRoleLabel] = ""
	out[corev1.LabelOSStable] = runtime.GOOS
	out[corev1.LabelArchStable] = runtime.GOARCH
	return out
}

// node returns the registration object: metadata, spec.taints and status.
func (cfg *Config) node(status corev1.NodeStatus, hostname string) *corev1.Node {
	n := &corev1.Node{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   cfg.NodeName,
			Labels: cfg.labels(hostname),
		},
		Status: status,
	}
	if len(cfg.Annotations) > 0 {
		n.Annotations = maps.Clone(cfg.Annotations)
	}
	if len(cfg.Taints) > 0 {
		n.Spec.Taints = slices.Clone(cfg.Taints)
	}
	return n
}

// statusNode returns the nodestatus object: the name and the status only.
func (cfg *Config) statusNode(status corev1.NodeStatus) *corev1.Node {
	return &corev1.Node{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: cfg.NodeName},
		Status:     status,
	}
}
