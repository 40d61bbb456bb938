package metaserver

import (
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skerry-io/skerry/pkg/wire"
)

// resource describes one served API resource and the wire type it is stored under.
type resource struct {
	gv         schema.GroupVersion
	name       string // plural, as in the URL
	singular   string
	kind       string
	namespaced bool
	shortNames []string
	categories []string
	wireType   wire.ResourceType // "" for write-only resources (events)
	// fields lists the field selectors accepted besides metadata.name and metadata.namespace.
	fields []string
	// verbs is what discovery advertises; reads are get, list, watch.
	verbs []string
	// subresources writable through the cloud, e.g. "status".
	subresources []string
}

func (r *resource) groupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.gv.Group, Resource: r.name}
}

func (r *resource) apiVersion() string { return r.gv.String() }

func (r *resource) readable() bool { return r.wireType != "" }

func readVerbs() []string { return []string{"get", "list", "watch"} }

// Group versions served.
var (
	coreV1        = schema.GroupVersion{Version: "v1"}
	discoveryV1   = schema.GroupVersion{Group: "discovery.k8s.io", Version: "v1"}
	devicesV1b1   = schema.GroupVersion{Group: "devices.kubeedge.io", Version: "v1beta1"}
	coordinationV = schema.GroupVersion{Group: "coordination.k8s.io", Version: "v1"}
)

// catalog is the fixed set of resources; built per Server (no package-level mutable state).
type catalog struct {
	groups []schema.GroupVersion // API groups other than core, in discovery order
	byGV   map[schema.GroupVersion][]*resource
}

func newCatalog() *catalog {
	rs := []*resource{
		{gv: coreV1, name: "pods", singular: "pod", kind: "Pod", namespaced: true, shortNames: []string{"po"}, categories: []string{"all"},
			wireType: wire.TypePod, verbs: readVerbs(), subresources: []string{"status"},
			fields: []string{"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP"}},
		{gv: coreV1, name: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true, shortNames: []string{"cm"},
			wireType: wire.TypeConfigMap, verbs: readVerbs()},
		{gv: coreV1, name: "secrets", singular: "secret", kind: "Secret", namespaced: true,
			wireType: wire.TypeSecret, verbs: readVerbs(), fields: []string{"type"}},
		{gv: coreV1, name: "nodes", singular: "node", kind: "Node", shortNames: []string{"no"},
			wireType: wire.TypeNode, verbs: readVerbs(), subresources: []string{"status"}, fields: []string{"spec.unschedulable"}},
		{gv: coreV1, name: "services", singular: "service", kind: "Service", namespaced: true, shortNames: []string{"svc"}, categories: []string{"all"},
			wireType: wire.TypeService, verbs: readVerbs()},
		{gv: coreV1, name: "endpoints", singular: "endpoints", kind: "Endpoints", namespaced: true, shortNames: []string{"ep"},
			wireType: wire.TypeEndpoints, verbs: readVerbs()},
		{gv: coreV1, name: "events", singular: "event", kind: "Event", namespaced: true, shortNames: []string{"ev"},
			verbs: []string{"create", "update"}},
		{gv: discoveryV1, name: "endpointslices", singular: "endpointslice", kind: "EndpointSlice", namespaced: true,
			wireType: TypeEndpointSlice, verbs: readVerbs()},
		{gv: coordinationV, name: "leases", singular: "lease", kind: "Lease", namespaced: true,
			wireType: wire.TypeLease, verbs: []string{"get", "list", "watch", "create", "update"}},
		{gv: devicesV1b1, name: "devices", singular: "device", kind: "Device", namespaced: true,
			wireType: wire.TypeDevice, verbs: readVerbs()},
		{gv: devicesV1b1, name: "devicemodels", singular: "devicemodel", kind: "DeviceModel", namespaced: true,
			wireType: wire.TypeDeviceModel, verbs: readVerbs()},
	}
	c := &catalog{byGV: map[schema.GroupVersion][]*resource{}}
	for _, r := range rs {
		if r.gv.Group != "" && len(c.byGV[r.gv]) == 0 {
			c.groups = append(c.groups, r.gv)
		}
		c.byGV[r.gv] = append(c.byGV[r.gv], r)
	}
	return c
}

// lookup finds a resource by group version and plural name.
func (c *catalog) lookup(gv schema.GroupVersion, name string) *resource {
	for _, r := range c.byGV[gv] {
		if r.name == name {
			return r
		}
	}
	return nil
}
