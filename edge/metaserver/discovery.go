package metaserver

import (
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
)

// serveDiscovery answers /version, /api, /api/v1, /apis, /apis/<group>[/<version>] and reports
// whether the path was one of them.
//
// Only the legacy (unaggregated) documents are served, always as application/json: a client
// asking for aggregated discovery (apidiscovery.k8s.io/v2) sees a plain content type and falls
// back to fetching the group list and each group version, which kubectl and client-go do.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request) bool {
	p := strings.TrimSuffix(r.URL.Path, "/")
	var v any
	switch {
	case p == "/version":
		v = version.Info{Major: "1", Minor: "36", GitVersion: "v1.36.3-skerry-metaserver", Platform: "edge"}
	case p == "/api":
		v = &metav1.APIVersions{
			TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
			Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{
				{ClientCIDR: "0.0.0.0/0", ServerAddress: s.cfg.Address},
			},
		}
	case p == "/api/v1":
		v = s.resourceList(coreV1)
	case p == "/apis":
		l := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
		for _, gv := range s.cat.groups {
			l.Groups = append(l.Groups, apiGroup(gv))
		}
		v = l
	case strings.HasPrefix(p, "/apis/"):
		parts := strings.Split(strings.TrimPrefix(p, "/apis/"), "/")
		switch len(parts) {
		case 1:
			for _, gv := range s.cat.groups {
				if gv.Group == parts[0] {
					g := apiGroup(gv)
					g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
					v = &g
				}
			}
			if v == nil {
				writeStatus(w, notFoundPath())
				return true
			}
		case 2:
			gv := schema.GroupVersion{Group: parts[0], Version: parts[1]}
			if len(s.cat.byGV[gv]) == 0 {
				writeStatus(w, notFoundPath())
				return true
			}
			v = s.resourceList(gv)
		default:
			return false
		}
	default:
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeStatus(w, newStatusError(http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "discovery documents are read-only"))
		return true
	}
	writeJSON(w, http.StatusOK, v)
	return true
}

func apiGroup(gv schema.GroupVersion) metav1.APIGroup {
	gvd := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
	return metav1.APIGroup{Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{gvd}, PreferredVersion: gvd}
}

// resourceList is the APIResourceList of one group version, subresources included.
func (s *Server) resourceList(gv schema.GroupVersion) *metav1.APIResourceList {
	l := &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: gv.String(),
		APIResources: []metav1.APIResource{},
	}
	for _, r := range s.cat.byGV[gv] {
		l.APIResources = append(l.APIResources, metav1.APIResource{
			Name: r.name, SingularName: r.singular, Namespaced: r.namespaced, Kind: r.kind,
			Verbs: r.verbs, ShortNames: r.shortNames, Categories: r.categories,
		})
		for _, sub := range r.subresources {
			l.APIResources = append(l.APIResources, metav1.APIResource{
				Name: r.name + "/" + sub, Namespaced: r.namespaced, Kind: r.kind,
				Verbs: []string{"get", "patch", "update"},
			})
		}
	}
	return l
}
