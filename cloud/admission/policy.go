package admission

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Labels, annotation and values the policy reads.
const (
	// EdgeNodeLabel marks edge nodes (any value; KubeEdge sets "").
	EdgeNodeLabel = "node-role.kubernetes.io/edge"
	// AutonomyLabel with value AutonomyLabelValue on a pod asks for tolerating an unreachable
	// node forever (KubeEdge's convention).
	AutonomyLabel      = "app-offline.kubeedge.io"
	AutonomyLabelValue = "autonomy"
	// TolerationSecondsAnnotation on an edge Node carries that node's setting, reported by
	// edgecore at registration: "unlimited" or "-1" (forever) or a non-negative integer.
	TolerationSecondsAnnotation = "edge.skerry.io/autonomy-toleration-seconds"
	// Unlimited is the annotation value for "tolerate forever".
	Unlimited = "unlimited"

	// APIServerDefaultSeconds is what the DefaultTolerationSeconds plugin gives by default
	// (--default-not-ready-toleration-seconds, --default-unreachable-toleration-seconds). A
	// toleration carrying exactly it is taken as the plugin's, not the user's.
	APIServerDefaultSeconds int64 = 300

	// MaxTolerationSeconds is the largest value accepted: the taint manager multiplies by
	// time.Second, and a larger value would overflow into an arbitrary (possibly tiny) delay.
	MaxTolerationSeconds int64 = math.MaxInt64 / int64(time.Second)
)

// Config is the cluster-wide part of the policy.
type Config struct {
	// Enabled applies DefaultTolerationSeconds to pods that merely select edge nodes and to pods
	// on edge nodes without a valid annotation. When false only node annotations and the
	// KubeEdge label apply.
	Enabled bool
	// DefaultTolerationSeconds is the cluster default; nil means forever.
	DefaultTolerationSeconds *int64
}

// Validate reports a default outside [0, MaxTolerationSeconds].
func (c Config) Validate() error {
	if s := c.DefaultTolerationSeconds; s != nil && (*s < 0 || *s > MaxTolerationSeconds) {
		return fmt.Errorf("defaultTolerationSeconds %d: must be between 0 and %d, or unset for unlimited", *s, MaxTolerationSeconds)
	}
	return nil
}

// NodeGetter looks nodes up by name; a NodeLister from client-go fits. It must return an error
// satisfying apierrors.IsNotFound for a missing node.
type NodeGetter interface {
	Get(name string) (*corev1.Node, error)
}

// Rule names which rule of the policy chose a decision, for logs and tests.
type Rule string

// The rules, in the order they are tried.
const (
	// RuleNone: the pod is not an edge pod as far as the policy can tell; leave it alone.
	RuleNone Rule = ""
	// RuleNodeAnnotation: the pod names an edge node whose annotation is valid.
	RuleNodeAnnotation Rule = "node-annotation"
	// RuleAutonomyLabel: the pod carries app-offline.kubeedge.io=autonomy.
	RuleAutonomyLabel Rule = "autonomy-label"
	// RuleEdgeNode: the pod names an edge node without a (valid) annotation; cluster default.
	RuleEdgeNode Rule = "edge-node"
	// RuleEdgeSelector: the pod can only be scheduled on edge nodes; cluster default.
	RuleEdgeSelector Rule = "edge-selector"
)

// Decision is the policy's answer for one pod.
type Decision struct {
	// Rule is RuleNone when the pod must not be touched.
	Rule Rule
	// Seconds is the tolerationSeconds to give; nil means forever.
	Seconds *int64
	// Node is the node the pod names (spec.nodeName or the hostname nodeSelector), edge or not.
	Node string
}

// Apply says whether the pod should get the autonomy tolerations.
func (d Decision) Apply() bool { return d.Rule != RuleNone }

// Policy decides which tolerationSeconds a pod being created gets. It is safe for concurrent use.
type Policy struct {
	cfg   Config
	nodes NodeGetter
	log   *slog.Logger
}

// NewPolicy returns the policy for cfg. nodes may be nil (no per-node settings); log may be nil.
func NewPolicy(cfg Config, nodes NodeGetter, log *slog.Logger) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Copy the default so a caller mutating its config cannot change a running policy.
	cfg.DefaultTolerationSeconds = clonePtr(cfg.DefaultTolerationSeconds)
	return &Policy{cfg: cfg, nodes: nodes, log: log}, nil
}

// Decide applies the rules in order:
//  1. the pod names an edge node (spec.nodeName, else nodeSelector kubernetes.io/hostname) whose
//     annotation is valid: the annotation's value;
//  2. the pod is labelled app-offline.kubeedge.io=autonomy: forever;
//  3. the cluster default, if Config.Enabled, when the pod names an edge node (without a valid
//     annotation) or can only be scheduled on edge nodes (nodeSelector has the edge label, or
//     every required node affinity term requires it);
//  4. otherwise nothing.
//
// Existing tolerations are not considered here; see the handler.
func (p *Policy) Decide(pod *corev1.Pod) Decision {
	d := Decision{Node: targetNode(pod)}
	onEdgeNode := false
	if d.Node != "" && p.nodes != nil {
		n, err := p.nodes.Get(d.Node)
		switch {
		case err != nil && !apierrors.IsNotFound(err):
			p.log.Warn("autonomy webhook: node lookup failed; ignoring the node", "node", d.Node, "err", err)
		case err != nil || n == nil:
			// Not created yet (or a typo): the other rules still apply.
		case hasKey(n.Labels, EdgeNodeLabel):
			onEdgeNode = true
			if v, ok := n.Annotations[TolerationSecondsAnnotation]; ok {
				secs, err := ParseTolerationSeconds(v)
				if err == nil {
					d.Rule, d.Seconds = RuleNodeAnnotation, secs
					return d
				}
				p.log.Warn("autonomy webhook: invalid node annotation; using the cluster default",
					"node", d.Node, "annotation", TolerationSecondsAnnotation, "value", v, "err", err)
			}
		}
	}
	if pod.Labels[AutonomyLabel] == AutonomyLabelValue {
		d.Rule = RuleAutonomyLabel
		return d
	}
	if !p.cfg.Enabled {
		return d
	}
	switch {
	case onEdgeNode:
		d.Rule = RuleEdgeNode
	case requiresEdge(pod):
		d.Rule = RuleEdgeSelector
	default:
		return d
	}
	d.Seconds = clonePtr(p.cfg.DefaultTolerationSeconds)
	return d
}

// ErrInvalidTolerationSeconds is wrapped by ParseTolerationSeconds' errors.
var ErrInvalidTolerationSeconds = errors.New(`want "unlimited", "-1" or an integer between 0 and ` + strconv.FormatInt(MaxTolerationSeconds, 10))

// ParseTolerationSeconds parses a TolerationSecondsAnnotation value: nil means forever.
func ParseTolerationSeconds(v string) (*int64, error) {
	v = strings.TrimSpace(v)
	if v == Unlimited || v == "-1" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > MaxTolerationSeconds {
		return nil, fmt.Errorf("toleration seconds %q: %w", v, ErrInvalidTolerationSeconds)
	}
	return &n, nil
}

// FormatTolerationSeconds is the annotation value for secs (nil: forever).
func FormatTolerationSeconds(secs *int64) string {
	if secs == nil {
		return Unlimited
	}
	return strconv.FormatInt(*secs, 10)
}

// targetNode is the node the pod is pinned to before scheduling, if any.
func targetNode(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName
	}
	return pod.Spec.NodeSelector[corev1.LabelHostname]
}

// requiresEdge says whether the scheduler can only place the pod on edge nodes. Node affinity
// terms are ORed, so every term must require the label: one term that does not would let the
// pod land on a cloud node, where tolerating an unreachable node forever would strand it.
func requiresEdge(pod *corev1.Pod) bool {
	if hasKey(pod.Spec.NodeSelector, EdgeNodeLabel) {
		return true
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return false
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) == 0 {
		return false
	}
	for _, t := range terms {
		if !termRequiresEdge(t) {
			return false
		}
	}
	return true
}

// termRequiresEdge: Exists, or In with values, both require the label to be present.
func termRequiresEdge(t corev1.NodeSelectorTerm) bool {
	for _, e := range t.MatchExpressions {
		if e.Key != EdgeNodeLabel {
			continue
		}
		if e.Operator == corev1.NodeSelectorOpExists || (e.Operator == corev1.NodeSelectorOpIn && len(e.Values) > 0) {
			return true
		}
	}
	return false
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

func clonePtr(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
