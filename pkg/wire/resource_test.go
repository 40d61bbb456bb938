package wire

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestParseResource(t *testing.T) {
	tests := []struct {
		in   string
		want Key
	}{
		{"default/pod/web-1", Key{Namespace: "default", Type: TypePod, Name: "web-1"}},
		{"default/configmap/cfg", Key{Namespace: "default", Type: TypeConfigMap, Name: "cfg"}},
		{"null/node/edge-1", Key{Type: TypeNode, Name: "edge-1"}},
		{"kube-system/serviceaccounttoken/default", Key{Namespace: "kube-system", Type: TypeServiceAccountToken, Name: "default"}},
		{"default/event/web-1.17a2b3c4d5e6f7a8", Key{Namespace: "default", Type: TypeEvent, Name: "web-1.17a2b3c4d5e6f7a8"}},
		{"default/nodestatus/edge-1", Key{Namespace: "default", Type: TypeNodeStatus, Name: "edge-1"}},
		{"default/pod", Key{Namespace: "default", Type: TypePod}}, // a type within a namespace (list query)
		{"null/node", Key{Type: TypeNode}},
		{"default/someday", Key{Namespace: "default", Type: "someday"}}, // unknown types are accepted
		{"0/pod/0", Key{Namespace: "0", Type: TypePod, Name: "0"}},
		{strings.Repeat("n", 63) + "/pod/" + strings.Repeat("a", 253), Key{Namespace: strings.Repeat("n", 63), Type: TypePod, Name: strings.Repeat("a", 253)}},
	}
	for _, tt := range tests {
		k, err := ParseResource(tt.in)
		if err != nil {
			t.Errorf("ParseResource(%q): %v", tt.in, err)
			continue
		}
		if k != tt.want {
			t.Errorf("ParseResource(%q) = %+v, want %+v", tt.in, k, tt.want)
		}
		if s := k.String(); s != tt.in {
			t.Errorf("ParseResource(%q).String() = %q", tt.in, s)
		}
		if err := k.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", k, err)
		}
	}
}

func TestParseResourceRejects(t *testing.T) {
	tests := []struct {
		in      string
		segment string
	}{
		{"", ""},
		{"pod", ""},
		{"default/pod/web-1/extra", ""},
		{"default/pod/a/../secret/b", ""},
		{"/pod/web-1", "namespace"},
		{"Default/pod/web-1", "namespace"},
		{"kube_system/pod/web-1", "namespace"},
		{"-ns/pod/web-1", "namespace"},
		{"ns-/pod/web-1", "namespace"},
		{"a.b/pod/web-1", "namespace"}, // namespaces are labels, not subdomains
		{"..//pod", "namespace"},
		{strings.Repeat("n", 64) + "/pod/web-1", "namespace"},
		{"default//web-1", "type"},
		{"default/", "type"},
		{"default/Pod/web-1", "type"},
		{"default/pod2/web-1", "type"},
		{"default/pod-status/web-1", "type"},
		{"default/" + strings.Repeat("t", 64) + "/x", "type"},
		{"default/pod/", "name"},
		{"default/pod/..", "name"},
		{"default/pod/.", "name"},
		{"default/pod/a..b", "name"},
		{"default/pod/Web-1", "name"},
		{"default/pod/web_1", "name"},
		{"default/pod/-web", "name"},
		{"default/pod/web.", "name"},
		{"default/pod/a.-b", "name"},
		{"default/pod/web 1", "name"},
		{"default/pod/" + strings.Repeat("a", 254), "name"},
	}
	for _, tt := range tests {
		k, err := ParseResource(tt.in)
		if err == nil {
			t.Errorf("ParseResource(%q) = %+v, want an error", tt.in, k)
			continue
		}
		var re *ResourceError
		if !errors.As(err, &re) || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseResource(%q): %v is not a ResourceError wrapping ErrInvalid", tt.in, err)
			continue
		}
		if re.Segment != tt.segment {
			t.Errorf("ParseResource(%q): segment %q, want %q (%v)", tt.in, re.Segment, tt.segment, err)
		}
	}
}

func TestKeyValidateAndFormat(t *testing.T) {
	// A namespace literally named "null" cannot be told from the cluster-scope token.
	if err := (Key{Namespace: "null", Type: TypePod, Name: "a"}).Validate(); err == nil {
		t.Error(`Key{Namespace:"null"} must not validate`)
	}
	if err := (Key{Namespace: "default", Name: "a"}).Validate(); err == nil {
		t.Error("a key without a type must not validate")
	}
	if got := (Key{Type: TypeNode, Name: "edge-1"}).String(); got != "null/node/edge-1" {
		t.Errorf("cluster-scoped key formats as %q", got)
	}
	if got := (Key{Namespace: "default", Type: TypePod, Name: "web-1"}).Cloud("edge-1"); got != "node/edge-1/default/pod/web-1" {
		t.Errorf("Cloud = %q", got)
	}
}

// Key is the map key of the per-object queues: equal resources give equal keys.
func TestKeyIsAMapKey(t *testing.T) {
	queues := map[Key]int{}
	for _, r := range []string{"default/pod/web-1", "default/pod/web-1", "null/node/edge-1", "default/pod/web-2"} {
		k, err := ParseResource(r)
		if err != nil {
			t.Fatal(err)
		}
		queues[k]++
	}
	if queues[Key{Namespace: "default", Type: TypePod, Name: "web-1"}] != 2 || len(queues) != 3 {
		t.Errorf("queues = %v", queues)
	}
}

func TestParseCloudResource(t *testing.T) {
	node, k, err := ParseCloudResource("node/edge-1/default/pod/web-1")
	if err != nil || node != "edge-1" || k != (Key{Namespace: "default", Type: TypePod, Name: "web-1"}) {
		t.Errorf("ParseCloudResource = %q, %+v, %v", node, k, err)
	}
	node, k, err = ParseCloudResource("node/edge-1.site-a/null/node/edge-1.site-a")
	if err != nil || node != "edge-1.site-a" || k != (Key{Type: TypeNode, Name: "edge-1.site-a"}) {
		t.Errorf("ParseCloudResource = %q, %+v, %v", node, k, err)
	}

	for _, tt := range []struct{ in, segment string }{
		{"default/pod/web-1", ""},
		{"nodes/edge-1/default/pod/web-1", ""},
		{"node/edge-1", ""},
		{"node//default/pod/web-1", "node"},
		{"node/Edge-1/default/pod/web-1", "node"},
		{"node/edge-1/default/pod/web-1/x", ""},
		{"node/edge-1/node/edge-2/default/pod/web-1", ""},
		{"node/edge-1/default/pod/..", "name"},
		{"node/edge-1//pod/a", "namespace"},
	} {
		_, _, err := ParseCloudResource(tt.in)
		var re *ResourceError
		if !errors.As(err, &re) || !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseCloudResource(%q) = %v, want a ResourceError wrapping ErrInvalid", tt.in, err)
			continue
		}
		if re.Segment != tt.segment || re.Resource != tt.in {
			t.Errorf("ParseCloudResource(%q): segment %q of %q, want %q (%v)", tt.in, re.Segment, re.Resource, tt.segment, err)
		}
	}
}

func TestToEdgeToCloud(t *testing.T) {
	edge, err := ToEdge("node/edge-1/default/pod/web-1", "edge-1")
	if err != nil || edge != "default/pod/web-1" {
		t.Errorf("ToEdge = %q, %v", edge, err)
	}
	cloud, err := ToCloud("default/podstatus/web-1", "edge-1")
	if err != nil || cloud != "node/edge-1/default/podstatus/web-1" {
		t.Errorf("ToCloud = %q, %v", cloud, err)
	}
	if back, err := ToEdge(cloud, "edge-1"); err != nil || back != "default/podstatus/web-1" {
		t.Errorf("ToEdge(ToCloud(x)) = %q, %v", back, err)
	}

	// The hub must never hand one node's object to another; a prefix match is not enough.
	for _, wrong := range []string{"node/edge-2/default/pod/web-1", "node/edge-10/default/pod/web-1", "node/edge/default/pod/web-1"} {
		_, err := ToEdge(wrong, "edge-1")
		if !errors.Is(err, ErrWrongNode) || errors.Is(err, ErrInvalid) {
			t.Errorf("ToEdge(%q, edge-1) = %v, want ErrWrongNode", wrong, err)
		}
	}

	for _, tt := range []struct{ resource, node string }{
		{"default/pod/web-1", "edge-1"},            // no prefix
		{"node/edge-1/default/pod/a/b", "edge-1"},  // bad remainder
		{"node/edge-1/default/pod/web-1", "Edge!"}, // bad session node
		{"node/edge-1/default/pod/web-1", ""},
	} {
		if _, err := ToEdge(tt.resource, tt.node); !errors.Is(err, ErrInvalid) {
			t.Errorf("ToEdge(%q, %q) = %v, want ErrInvalid", tt.resource, tt.node, err)
		}
	}
	for _, tt := range []struct{ resource, node string }{
		{"node/edge-2/default/pod/web-1", "edge-1"}, // a node cannot address another node's objects
		{"default/pod/../../x", "edge-1"},
		{"default/pod/web-1", "edge/1"},
		{"default/pod/web-1", ""},
	} {
		if _, err := ToCloud(tt.resource, tt.node); !errors.Is(err, ErrInvalid) {
			t.Errorf("ToCloud(%q, %q) = %v, want ErrInvalid", tt.resource, tt.node, err)
		}
	}
}

// The hand-written name checks agree with Kubernetes' own validation.
func TestNameRulesMatchApimachinery(t *testing.T) {
	inputs := []string{
		"", "a", "A", "0", "-", ".", "a-", "-a", "a-b", "a--b", "a.b", "a..b", "a.-b", "a-.b", ".a", "a.",
		"a_b", "a b", "é", "a.b.c", "0.0", strings.Repeat("a", 63), strings.Repeat("a", 64),
		strings.Repeat("a", 253), strings.Repeat("a", 254), strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 127),
		"a\n", "\na", "abc\x00",
	}
	for _, s := range inputs {
		checkNameRules(t, s)
	}
}

func checkNameRules(t *testing.T, s string) {
	t.Helper()
	if got, want := isDNS1123Label(s), len(validation.IsDNS1123Label(s)) == 0; got != want {
		t.Errorf("isDNS1123Label(%q) = %v, apimachinery says %v", s, got, want)
	}
	if got, want := isDNS1123Subdomain(s), len(validation.IsDNS1123Subdomain(s)) == 0; got != want {
		t.Errorf("isDNS1123Subdomain(%q) = %v, apimachinery says %v", s, got, want)
	}
}

func TestKeyCompareOrdersByNamespaceTypeName(t *testing.T) {
	keys := []Key{
		{Namespace: "default", Type: TypePod, Name: "b"},
		{Namespace: "", Type: TypeNode, Name: "edge-1"},
		{Namespace: "default", Type: TypeConfigMap, Name: "z"},
		{Namespace: "default", Type: TypePod, Name: "a"},
	}
	slices.SortFunc(keys, Key.Compare)
	want := []string{"null/node/edge-1", "default/configmap/z", "default/pod/a", "default/pod/b"}
	for i, k := range keys {
		if k.String() != want[i] {
			t.Fatalf("sorted = %v, want %v", keys, want)
		}
	}
	if k := (Key{Namespace: "a", Type: TypePod, Name: "x"}); k.Compare(k) != 0 {
		t.Fatal("a key does not compare equal to itself")
	}
}
