package metaserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skerry-io/skerry/pkg/wire"
)

// CloudResourceVersionAnnotation keeps the cloud's metadata.resourceVersion of a served object,
// whose own resourceVersion is replaced by the local store revision. It lets an operator match
// an edge object with the cloud's, and a client compare versions across reconnects.
const CloudResourceVersionAnnotation = "edge.skerry.io/cloud-resource-version"

// item is a stored object decoded for serving: resourceVersion rewritten, selectors' inputs
// extracted.
type item struct {
	key    wire.Key
	rev    int64
	obj    map[string]any
	labels labels.Set
	fields fields.Set
}

// decodeItem decodes o for resource r. It fills apiVersion, kind, name and namespace when the
// content lacks them (a deletion's content may be only the metadata).
func decodeItem(r *resource, o Object) (*item, error) {
	dec := json.NewDecoder(bytes.NewReader(o.Content))
	dec.UseNumber() // keep integers exact through the re-encoding
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", o.Key, err)
	}
	if obj == nil {
		obj = map[string]any{}
	}
	if s, _ := obj["apiVersion"].(string); s == "" {
		obj["apiVersion"] = r.apiVersion()
	}
	if s, _ := obj["kind"].(string); s == "" {
		obj["kind"] = r.kind
	}
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		obj["metadata"] = md
	}
	if s, _ := md["name"].(string); s == "" {
		md["name"] = o.Key.Name
	}
	if r.namespaced {
		if s, _ := md["namespace"].(string); s == "" {
			md["namespace"] = o.Key.Namespace
		}
	}
	if crv, _ := md["resourceVersion"].(string); crv != "" {
		ann, _ := md["annotations"].(map[string]any)
		if ann == nil {
			ann = map[string]any{}
			md["annotations"] = ann
		}
		ann[CloudResourceVersionAnnotation] = crv
	}
	md["resourceVersion"] = strconv.FormatInt(o.Revision, 10)

	it := &item{key: o.Key, rev: o.Revision, obj: obj, labels: labels.Set{}}
	if l, ok := md["labels"].(map[string]any); ok {
		for k, v := range l {
			if s, ok := v.(string); ok {
				it.labels[k] = s
			}
		}
	}
	it.fields = fields.Set{"metadata.name": o.Key.Name}
	if r.namespaced {
		it.fields["metadata.namespace"] = o.Key.Namespace
	}
	for _, f := range r.fields {
		it.fields[f] = fieldString(lookupPath(obj, f))
	}
	return it, nil
}

// lookupPath returns the value at a dotted path of obj, or nil.
func lookupPath(obj map[string]any, path string) any {
	var cur any = obj
	for len(path) > 0 {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		seg := path
		if i := strings.IndexByte(path, '.'); i >= 0 {
			seg, path = path[:i], path[i+1:]
		} else {
			path = ""
		}
		cur = m[seg]
	}
	return cur
}

// fieldString renders a field the way the apiserver's field sets do (booleans as
// "true"/"false", missing as "").
func fieldString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case json.Number:
		return v.String()
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// meta returns the object's metadata map (decodeItem guarantees one).
func (it *item) meta() map[string]any {
	md, _ := it.obj["metadata"].(map[string]any)
	return md
}

func (it *item) name() string      { return it.key.Name }
func (it *item) namespace() string { return it.key.Namespace }

// matches reports whether the item is selected.
func (it *item) matches(sel selectors) bool {
	return sel.label.Matches(it.labels) && sel.field.Matches(it.fields)
}

// sortItems orders items by namespace and name, the apiserver's list order.
func sortItems(items []*item) {
	slices.SortFunc(items, func(a, b *item) int { return a.key.Compare(b.key) })
}
