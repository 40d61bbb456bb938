package wire

import (
	"cmp"
	"fmt"
	"strings"
)

// ResourceType is the <type> segment of a resource string. Any 1–63 lowercase ASCII letters are
// accepted (KubeEdge adds types between releases); the constants are the ones the contract names.
type ResourceType string

// Resource types named by the KubeEdge contract.
const (
	TypePod                 ResourceType = "pod"
	TypePodStatus           ResourceType = "podstatus"
	TypePodPatch            ResourceType = "podpatch"
	TypeNode                ResourceType = "node"
	TypeNodeStatus          ResourceType = "nodestatus"
	TypeNodePatch           ResourceType = "nodepatch"
	TypeConfigMap           ResourceType = "configmap"
	TypeSecret              ResourceType = "secret"
	TypeServiceAccountToken ResourceType = "serviceaccounttoken"
	TypeLease               ResourceType = "lease"
	TypeEvent               ResourceType = "event"
	TypeService             ResourceType = "service"
	TypeEndpoints           ResourceType = "endpoints"
	TypeDevice              ResourceType = "device"
	TypeDeviceModel         ResourceType = "devicemodel"
	TypeMembership          ResourceType = "membership"
	TypeTwin                ResourceType = "twin"
	// TypeDeviceStatus and TypeMQTTUpload are skerry's upstream device messages
	// (docs/protocol.md, "Devices").
	TypeDeviceStatus ResourceType = "devicestatus"
	TypeMQTTUpload   ResourceType = "mqttupload"
)

// NullNamespace is the namespace token of cluster-scoped objects. It makes a namespace really
// named "null" unrepresentable on the wire (as in KubeEdge); [Key.Validate] refuses it.
const NullNamespace = "null"

// cloudPrefix starts every cloud-side resource: node/<nodeName>/<edge resource>.
const cloudPrefix = "node/"

// maxTypeLength matches a DNS label; real types are far shorter.
const maxTypeLength = 63

// Key names an object (or, with an empty Name, a type within a namespace, as in a list
// query). It is comparable, so per-object queues can use it as a map key.
type Key struct {
	// Namespace is a DNS-1123 label, or "" for a cluster-scoped object.
	Namespace string
	Type      ResourceType
	// Name is a DNS-1123 subdomain, or "" when the resource names no single object.
	Name string
}

// ResourceError says which segment of a resource string is wrong. It wraps [ErrInvalid], or
// [ErrWrongNode] when a cloud resource names another node.
type ResourceError struct {
	Resource string // the whole string, as given
	Segment  string // "namespace", "type", "name", "node", or "" for the string's shape
	Reason   string
	Err      error
}

func (e *ResourceError) Error() string {
	r := e.Resource
	if len(r) > 300 {
		r = r[:300] + "…"
	}
	if e.Segment == "" {
		return fmt.Sprintf("%v: resource %q: %s", e.Err, r, e.Reason)
	}
	return fmt.Sprintf("%v: resource %q: %s: %s", e.Err, r, e.Segment, e.Reason)
}

func (e *ResourceError) Unwrap() error { return e.Err }

func resourceErr(resource, segment, reason string) error {
	return &ResourceError{Resource: resource, Segment: segment, Reason: reason, Err: ErrInvalid}
}

// ParseResource parses the edge form <namespace>/<type>[/<name>], e.g. "default/pod/web-1" or
// "null/node/edge-1". The returned key's strings share memory with s.
func ParseResource(s string) (Key, error) {
	ns, rest, ok := strings.Cut(s, "/")
	if !ok {
		return Key{}, resourceErr(s, "", "want <namespace>/<type>[/<name>]")
	}
	typ, name, hasName := strings.Cut(rest, "/")
	if hasName && name == "" {
		return Key{}, resourceErr(s, "name", "empty (trailing slash)")
	}
	if strings.IndexByte(name, '/') >= 0 {
		return Key{}, resourceErr(s, "", "too many segments, want <namespace>/<type>[/<name>]")
	}
	k := Key{Namespace: ns, Type: ResourceType(typ), Name: name}
	switch ns {
	case NullNamespace:
		k.Namespace = ""
	case "":
		return Key{}, resourceErr(s, "namespace", "empty")
	}
	if seg, reason := k.check(); seg != "" {
		return Key{}, resourceErr(s, seg, reason)
	}
	return k, nil
}

// Compare orders keys by namespace, type and name, for deterministic listings (slices.SortFunc).
func (k Key) Compare(o Key) int {
	if c := cmp.Compare(k.Namespace, o.Namespace); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Type, o.Type); c != 0 {
		return c
	}
	return cmp.Compare(k.Name, o.Name)
}

// String returns the edge form. It does not validate k; see [Key.Validate].
func (k Key) String() string {
	ns := k.Namespace
	if ns == "" {
		ns = NullNamespace
	}
	if k.Name == "" {
		return ns + "/" + string(k.Type)
	}
	return ns + "/" + string(k.Type) + "/" + k.Name
}

// Validate reports whether k can be written as a resource string that parses back to k.
func (k Key) Validate() error {
	if seg, reason := k.check(); seg != "" {
		return resourceErr(k.String(), seg, reason)
	}
	return nil
}

// check returns the first bad segment and why, or "" if k is valid.
func (k Key) check() (segment, reason string) {
	switch {
	case k.Namespace == NullNamespace:
		return "namespace", `"null" is the cluster-scope token; use "" for cluster-scoped objects`
	case k.Namespace != "" && !isDNS1123Label(k.Namespace):
		return "namespace", "must be a DNS-1123 label (lowercase alphanumerics and '-', at most 63)"
	case k.Type == "":
		return "type", "empty"
	case !isResourceType(string(k.Type)):
		return "type", "must be 1-63 lowercase letters"
	case k.Name != "" && !isDNS1123Subdomain(k.Name):
		return "name", "must be a DNS-1123 subdomain (lowercase alphanumerics, '-' and '.', at most 253)"
	}
	return "", ""
}

// Cloud returns the cloud form node/<nodeName>/<edge form>. It does not validate.
func (k Key) Cloud(nodeName string) string {
	return cloudPrefix + nodeName + "/" + k.String()
}

// ParseCloudResource parses the cloud form node/<nodeName>/<namespace>/<type>[/<name>]. The
// cloud form is exactly the edge form behind a node/<nodeName>/ prefix, so the name is as
// optional as it is at the edge.
func ParseCloudResource(s string) (nodeName string, k Key, err error) {
	node, edge, err := splitCloud(s)
	if err != nil {
		return "", Key{}, err
	}
	k, err = ParseResource(edge)
	if err != nil {
		return "", Key{}, inCloud(err, s)
	}
	return node, k, nil
}

// splitCloud splits node/<nodeName>/<rest> and validates the node name.
func splitCloud(s string) (node, rest string, err error) {
	after, ok := strings.CutPrefix(s, cloudPrefix)
	if !ok {
		return "", "", resourceErr(s, "", `want node/<nodeName>/<namespace>/<type>[/<name>]`)
	}
	node, rest, ok = strings.Cut(after, "/")
	if !ok {
		return "", "", resourceErr(s, "", `want node/<nodeName>/<namespace>/<type>[/<name>]`)
	}
	if err := checkNodeName(s, node); err != nil {
		return "", "", err
	}
	return node, rest, nil
}

func checkNodeName(resource, node string) error {
	if node == "" {
		return resourceErr(resource, "node", "empty")
	}
	if !isDNS1123Subdomain(node) {
		return resourceErr(resource, "node", "must be a DNS-1123 subdomain")
	}
	return nil
}

// checkSessionNode checks the node name a hub passes in (not one read from the resource).
func checkSessionNode(resource, node string) error {
	if !isDNS1123Subdomain(node) {
		return &ResourceError{Resource: resource, Segment: "node",
			Reason: fmt.Sprintf("session node name %q is not a DNS-1123 subdomain", node), Err: ErrInvalid}
	}
	return nil
}

// inCloud rewrites an edge-form ResourceError to show the whole cloud string.
func inCloud(err error, cloud string) error {
	if re, ok := err.(*ResourceError); ok {
		c := *re
		c.Resource = cloud
		return &c
	}
	return err
}

// ToEdge strips the node/<nodeName>/ prefix on the way down. It refuses, with [ErrWrongNode],
// a resource addressed to any node but nodeName: the hub must never hand one node's object to
// another. The result is a substring of cloudResource (no allocation).
func ToEdge(cloudResource, nodeName string) (string, error) {
	if err := checkSessionNode(cloudResource, nodeName); err != nil {
		return "", err
	}
	node, edge, err := splitCloud(cloudResource)
	if err != nil {
		return "", err
	}
	if node != nodeName {
		return "", &ResourceError{Resource: cloudResource, Segment: "node",
			Reason: fmt.Sprintf("addressed to %q, session is %q", node, nodeName), Err: ErrWrongNode}
	}
	if _, err := ParseResource(edge); err != nil {
		return "", inCloud(err, cloudResource)
	}
	return edge, nil
}

// ToCloud adds the node/<nodeName>/ prefix on the way up, after checking that edgeResource is
// a valid edge-form resource (a node cannot smuggle a second prefix or a path through it).
func ToCloud(edgeResource, nodeName string) (string, error) {
	if err := checkSessionNode(edgeResource, nodeName); err != nil {
		return "", err
	}
	if _, err := ParseResource(edgeResource); err != nil {
		return "", err
	}
	return cloudPrefix + nodeName + "/" + edgeResource, nil
}

// isDNS1123Label matches k8s.io/apimachinery's IsDNS1123Label without its regexp and
// allocations (the tests check the two agree): [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63.
func isDNS1123Label(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case ('a' <= c && c <= 'z') || ('0' <= c && c <= '9'):
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// isDNS1123Subdomain matches apimachinery's IsDNS1123Subdomain: dot-separated labels of the
// label alphabet, at most 253 in total. Like apimachinery it does not cap single labels at 63.
func isDNS1123Subdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case ('a' <= c && c <= 'z') || ('0' <= c && c <= '9'):
		case c == '-' || c == '.':
			// Neither may start or end the name or a label, so no "..", ".-", "-." either.
			if i == 0 || i == len(s)-1 {
				return false
			}
			prev, next := s[i-1], s[i+1]
			if c == '.' && (prev == '-' || prev == '.' || next == '-' || next == '.') {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func isResourceType(s string) bool {
	if len(s) == 0 || len(s) > maxTypeLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}
