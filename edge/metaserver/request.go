package metaserver

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// requestInfo is what a resource URL names.
type requestInfo struct {
	gv          schema.GroupVersion
	namespace   string // "" when the URL names none
	resource    string
	name        string
	subresource string
	watchPath   bool // legacy /watch/ prefix
}

// maxPathSegments bounds the work on hostile paths; the longest real one has 9.
const maxPathSegments = 12

// parsePath parses an API resource path:
//
//	/api/v1[/watch][/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]
//	/apis/{group}/{version}[/watch][/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]
//
// /api/v1/namespaces/{ns} itself parses as resource "namespaces" named ns. Discovery paths are
// routed before this; anything else is an error.
func parsePath(path string) (requestInfo, error) {
	var ri requestInfo
	p := strings.TrimPrefix(path, "/")
	p = strings.TrimSuffix(p, "/")
	segs := strings.Split(p, "/")
	if len(segs) > maxPathSegments {
		return ri, fmt.Errorf("path has too many segments")
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return ri, fmt.Errorf("empty or relative path segment")
		}
	}
	switch {
	case len(segs) >= 3 && segs[0] == "api":
		ri.gv = schema.GroupVersion{Version: segs[1]}
		segs = segs[2:]
	case len(segs) >= 4 && segs[0] == "apis":
		ri.gv = schema.GroupVersion{Group: segs[1], Version: segs[2]}
		segs = segs[3:]
	default:
		return ri, fmt.Errorf("not a resource path")
	}
	if segs[0] == "watch" {
		ri.watchPath = true
		segs = segs[1:]
		if len(segs) == 0 {
			return ri, fmt.Errorf("watch of nothing")
		}
	}
	if segs[0] == "namespaces" && len(segs) >= 3 {
		ri.namespace = segs[1]
		segs = segs[2:]
	}
	ri.resource = segs[0]
	switch len(segs) {
	case 1:
	case 2:
		ri.name = segs[1]
	case 3:
		ri.name, ri.subresource = segs[1], segs[2]
	default:
		return ri, fmt.Errorf("path has too many segments")
	}
	if ri.watchPath && ri.subresource != "" {
		return ri, fmt.Errorf("cannot watch a subresource")
	}
	return ri, nil
}
