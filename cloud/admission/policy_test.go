package admission

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// fakeNodes is a NodeGetter over a map; the node "broken" fails with a non-NotFound error.
type fakeNodes map[string]*corev1.Node

func (f fakeNodes) Get(name string) (*corev1.Node, error) {
	if name == "broken" {
		return nil, errors.New("informer not synced")
	}
	n, ok := f[name]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "nodes"}, name)
	}
	return n, nil
}

func node(name string, edge bool, annotation ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}}
	if edge {
		n.Labels[EdgeNodeLabel] = ""
	}
	if len(annotation) > 0 {
		n.Annotations = map[string]string{TolerationSecondsAnnotation: annotation[0]}
	}
	return n
}

func testNodes() fakeNodes {
	return fakeNodes{
		"edge-600":   node("edge-600", true, "600"),
		"edge-zero":  node("edge-zero", true, "0"),
		"edge-unl":   node("edge-unl", true, "unlimited"),
		"edge-minus": node("edge-minus", true, "-1"),
		"edge-plain": node("edge-plain", true),
		"edge-bad":   node("edge-bad", true, "ten minutes"),
		"edge-huge":  node("edge-huge", true, "9223372037"),
		"edge-neg":   node("edge-neg", true, "-5"),
		"cloud-1":    node("cloud-1", false, "600"),
	}
}

type podOpt func(*corev1.Pod)

func onNode(n string) podOpt       { return func(p *corev1.Pod) { p.Spec.NodeName = n } }
func labelled(k, v string) podOpt  { return func(p *corev1.Pod) { p.Labels[k] = v } }
func selecting(k, v string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeSelector[k] = v } }
func affinity(terms ...corev1.NodeSelectorTerm) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
		}}
	}
}
func term(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func newPod(opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{}},
		Spec:       corev1.PodSpec{NodeSelector: map[string]string{}, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func i64(v int64) *int64 { return &v }

func TestDecide(t *testing.T) {
	enabled := Config{Enabled: true, DefaultTolerationSeconds: i64(3600)}
	forever := Config{Enabled: true}
	disabled := Config{Enabled: false, DefaultTolerationSeconds: i64(3600)}
	autonomy := labelled(AutonomyLabel, AutonomyLabelValue)
	selEdge := selecting(EdgeNodeLabel, "")

	tests := []struct {
		name string
		cfg  Config
		pod  *corev1.Pod
		rule Rule
		secs *int64
		node string
	}{
		// Rule 1: the pod names an edge node with a valid annotation.
		{"nodeName annotation seconds", enabled, newPod(onNode("edge-600")), RuleNodeAnnotation, i64(600), "edge-600"},
		{"nodeName annotation zero", enabled, newPod(onNode("edge-zero")), RuleNodeAnnotation, i64(0), "edge-zero"},
		{"nodeName annotation unlimited", enabled, newPod(onNode("edge-unl")), RuleNodeAnnotation, nil, "edge-unl"},
		{"nodeName annotation -1", enabled, newPod(onNode("edge-minus")), RuleNodeAnnotation, nil, "edge-minus"},
		{"hostname selector annotation", enabled, newPod(selecting(corev1.LabelHostname, "edge-600")), RuleNodeAnnotation, i64(600), "edge-600"},
		{"nodeName wins over hostname selector", enabled, newPod(onNode("edge-unl"), selecting(corev1.LabelHostname, "edge-600")), RuleNodeAnnotation, nil, "edge-unl"},
		{"annotation wins over autonomy label", enabled, newPod(onNode("edge-600"), autonomy), RuleNodeAnnotation, i64(600), "edge-600"},
		{"annotation applies when default disabled", disabled, newPod(onNode("edge-600")), RuleNodeAnnotation, i64(600), "edge-600"},
		// Edge node without a valid annotation: the label, else the cluster default.
		{"edge node no annotation", enabled, newPod(onNode("edge-plain")), RuleEdgeNode, i64(3600), "edge-plain"},
		{"edge node no annotation forever default", forever, newPod(onNode("edge-plain")), RuleEdgeNode, nil, "edge-plain"},
		{"edge node no annotation disabled", disabled, newPod(onNode("edge-plain")), RuleNone, nil, "edge-plain"},
		{"edge node no annotation labelled", enabled, newPod(onNode("edge-plain"), autonomy), RuleAutonomyLabel, nil, "edge-plain"},
		{"edge node bad annotation", enabled, newPod(onNode("edge-bad")), RuleEdgeNode, i64(3600), "edge-bad"},
		{"edge node overflowing annotation", enabled, newPod(onNode("edge-huge")), RuleEdgeNode, i64(3600), "edge-huge"},
		{"edge node negative annotation", enabled, newPod(onNode("edge-neg")), RuleEdgeNode, i64(3600), "edge-neg"},
		{"edge node bad annotation disabled", disabled, newPod(onNode("edge-bad")), RuleNone, nil, "edge-bad"},
		// A named node that is not an edge node, missing, or failing: fall through.
		{"cloud node annotation ignored", enabled, newPod(onNode("cloud-1")), RuleNone, nil, "cloud-1"},
		{"cloud node labelled", enabled, newPod(onNode("cloud-1"), autonomy), RuleAutonomyLabel, nil, "cloud-1"},
		{"cloud node but edge selector", enabled, newPod(onNode("cloud-1"), selEdge), RuleEdgeSelector, i64(3600), "cloud-1"},
		{"missing node", enabled, newPod(onNode("nope")), RuleNone, nil, "nope"},
		{"missing node edge selector", enabled, newPod(selecting(corev1.LabelHostname, "nope"), selEdge), RuleEdgeSelector, i64(3600), "nope"},
		{"lookup error labelled", enabled, newPod(onNode("broken"), autonomy), RuleAutonomyLabel, nil, "broken"},
		// Rule 2: the KubeEdge label.
		{"autonomy label", enabled, newPod(autonomy), RuleAutonomyLabel, nil, ""},
		{"autonomy label disabled", disabled, newPod(autonomy), RuleAutonomyLabel, nil, ""},
		{"autonomy label other value", enabled, newPod(labelled(AutonomyLabel, "no")), RuleNone, nil, ""},
		// Rule 3: the pod can only run on edge nodes.
		{"edge nodeSelector empty value", enabled, newPod(selEdge), RuleEdgeSelector, i64(3600), ""},
		{"edge nodeSelector any value", enabled, newPod(selecting(EdgeNodeLabel, "true")), RuleEdgeSelector, i64(3600), ""},
		{"edge nodeSelector forever", forever, newPod(selEdge), RuleEdgeSelector, nil, ""},
		{"edge nodeSelector disabled", disabled, newPod(selEdge), RuleNone, nil, ""},
		{"affinity Exists", enabled, newPod(affinity(term(EdgeNodeLabel, corev1.NodeSelectorOpExists))), RuleEdgeSelector, i64(3600), ""},
		{"affinity In", enabled, newPod(affinity(term(EdgeNodeLabel, corev1.NodeSelectorOpIn, ""))), RuleEdgeSelector, i64(3600), ""},
		{"affinity every term", enabled, newPod(affinity(term(EdgeNodeLabel, corev1.NodeSelectorOpExists), term(EdgeNodeLabel, corev1.NodeSelectorOpIn, "a"))), RuleEdgeSelector, i64(3600), ""},
		{"affinity one term of two", enabled, newPod(affinity(term(EdgeNodeLabel, corev1.NodeSelectorOpExists), term("zone", corev1.NodeSelectorOpExists))), RuleNone, nil, ""},
		{"affinity DoesNotExist", enabled, newPod(affinity(term(EdgeNodeLabel, corev1.NodeSelectorOpDoesNotExist))), RuleNone, nil, ""},
		{"affinity NotIn", enabled, newPod(affinity(term(EdgeNodeLabel, corev1.NodeSelectorOpNotIn, "x"))), RuleNone, nil, ""},
		{"affinity In no values", enabled, newPod(affinity(term(EdgeNodeLabel, corev1.NodeSelectorOpIn))), RuleNone, nil, ""},
		{"affinity no terms", enabled, newPod(affinity()), RuleNone, nil, ""},
		{"affinity disabled", disabled, newPod(affinity(term(EdgeNodeLabel, corev1.NodeSelectorOpExists))), RuleNone, nil, ""},
		// Rule 4.
		{"plain pod", enabled, newPod(), RuleNone, nil, ""},
		{"other selector", enabled, newPod(selecting("disk", "ssd")), RuleNone, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPolicy(tc.cfg, testNodes(), nil)
			if err != nil {
				t.Fatal(err)
			}
			d := p.Decide(tc.pod)
			if d.Rule != tc.rule || !sameSeconds(d.Seconds, tc.secs) || d.Node != tc.node {
				t.Errorf("Decide = {%q %s %q}, want {%q %s %q}", d.Rule, FormatTolerationSeconds(d.Seconds), d.Node,
					tc.rule, FormatTolerationSeconds(tc.secs), tc.node)
			}
			if d.Apply() != (tc.rule != RuleNone) {
				t.Errorf("Apply() = %v", d.Apply())
			}
		})
	}
}

func TestDecideWithoutNodeGetter(t *testing.T) {
	p, err := NewPolicy(Config{Enabled: true, DefaultTolerationSeconds: i64(60)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide(newPod(onNode("edge-600"))); d.Apply() {
		t.Errorf("named node without a NodeGetter: %+v", d)
	}
	if d := p.Decide(newPod(onNode("edge-600"), selecting(EdgeNodeLabel, ""))); d.Rule != RuleEdgeSelector {
		t.Errorf("edge selector without a NodeGetter: %+v", d)
	}
}

func TestPolicyOwnsItsDefault(t *testing.T) {
	cfg := Config{Enabled: true, DefaultTolerationSeconds: i64(60)}
	p, err := NewPolicy(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	*cfg.DefaultTolerationSeconds = 1
	d := p.Decide(newPod(selecting(EdgeNodeLabel, "")))
	if d.Seconds == nil || *d.Seconds != 60 {
		t.Fatalf("seconds = %s, want 60", FormatTolerationSeconds(d.Seconds))
	}
	*d.Seconds = 2 // a decision is the caller's to change
	if d2 := p.Decide(newPod(selecting(EdgeNodeLabel, ""))); *d2.Seconds != 60 {
		t.Fatalf("decision aliases the policy's default")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		secs *int64
		ok   bool
	}{{nil, true}, {i64(0), true}, {i64(300), true}, {i64(MaxTolerationSeconds), true}, {i64(-1), false}, {i64(MaxTolerationSeconds + 1), false}} {
		_, err := NewPolicy(Config{Enabled: true, DefaultTolerationSeconds: tc.secs}, nil, nil)
		if (err == nil) != tc.ok {
			t.Errorf("default %s: err = %v", FormatTolerationSeconds(tc.secs), err)
		}
	}
}

func TestParseTolerationSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *int64
		ok   bool
	}{
		{"unlimited", nil, true}, {"-1", nil, true}, {" 42 ", i64(42), true}, {"0", i64(0), true},
		{"9223372036", i64(MaxTolerationSeconds), true},
		{"9223372037", nil, false}, {"-2", nil, false}, {"", nil, false}, {"Unlimited", nil, false},
		{"1.5", nil, false}, {"5m", nil, false}, {"0x10", nil, false},
	} {
		got, err := ParseTolerationSeconds(tc.in)
		if (err == nil) != tc.ok || !sameSeconds(got, tc.want) {
			t.Errorf("ParseTolerationSeconds(%q) = %s, %v", tc.in, FormatTolerationSeconds(got), err)
		}
		if err != nil && !errors.Is(err, ErrInvalidTolerationSeconds) {
			t.Errorf("error %v does not wrap ErrInvalidTolerationSeconds", err)
		}
		if tc.ok {
			back, err := ParseTolerationSeconds(FormatTolerationSeconds(got))
			if err != nil || !sameSeconds(back, got) {
				t.Errorf("Format/Parse round trip of %q: %s, %v", tc.in, FormatTolerationSeconds(back), err)
			}
		}
	}
}
