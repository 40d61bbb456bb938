package metaserver

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

// selectors is a request's label and field selection.
type selectors struct {
	label labels.Selector
	field fields.Selector
}

// empty reports whether everything is selected (watches then need no membership tracking).
func (s selectors) empty() bool { return s.label.Empty() && s.field.Empty() }

// parseSelectors parses labelSelector and fieldSelector for resource r. Field selectors on a
// field the resource does not index are refused, as the apiserver does.
func parseSelectors(r *resource, labelSel, fieldSel string) (selectors, error) {
	var s selectors
	var err error
	if s.label, err = labels.Parse(labelSel); err != nil {
		return s, fmt.Errorf("unable to parse requested label selector: %w", err)
	}
	if s.field, err = fields.ParseSelector(fieldSel); err != nil {
		return s, fmt.Errorf("unable to parse requested field selector: %w", err)
	}
	for _, req := range s.field.Requirements() {
		if !fieldSupported(r, req.Field) {
			return s, fmt.Errorf("field label not supported: %s", req.Field)
		}
	}
	return s, nil
}

func fieldSupported(r *resource, f string) bool {
	switch f {
	case "metadata.name":
		return true
	case "metadata.namespace":
		return r.namespaced
	}
	return slices.Contains(r.fields, f)
}
