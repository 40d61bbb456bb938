package admission

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// applyPatch applies an RFC 6902 patch using the "add", "replace" and "remove" operations, which
// is all the handler emits. github.com/evanphx/json-patch is not a dependency of this module, so
// the tests carry this small applier instead. It follows RFC 6902 strictly where a lax applier
// would hide a bug: "replace" and "remove" need an existing target, "add" into an array needs an
// index in [0, len] or "-", and the parent of every path must exist.
func applyPatch(doc, patch []byte) ([]byte, error) {
	var root any
	if err := json.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("document: %w", err)
	}
	var ops []struct {
		Op    string           `json:"op"`
		Path  string           `json:"path"`
		Value *json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	for i, op := range ops {
		var val any
		if op.Op != "remove" {
			if op.Value == nil {
				return nil, fmt.Errorf("op %d: no value", i)
			}
			if err := json.Unmarshal(*op.Value, &val); err != nil {
				return nil, fmt.Errorf("op %d value: %w", i, err)
			}
		}
		var err error
		root, err = applyOp(root, op.Op, op.Path, val)
		if err != nil {
			return nil, fmt.Errorf("op %d (%s %s): %w", i, op.Op, op.Path, err)
		}
	}
	return json.Marshal(root)
}

func applyOp(root any, op, path string, val any) (any, error) {
	if path == "" {
		if op == "remove" {
			return nil, fmt.Errorf("cannot remove the root")
		}
		return val, nil
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("path does not start with /")
	}
	toks := strings.Split(path[1:], "/")
	for i, t := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	parentPath, last := toks[:len(toks)-1], toks[len(toks)-1]
	var parent any = root
	for _, t := range parentPath {
		switch p := parent.(type) {
		case map[string]any:
			v, ok := p[t]
			if !ok {
				return nil, fmt.Errorf("no member %q", t)
			}
			parent = v
		case []any:
			n, err := strconv.Atoi(t)
			if err != nil || n < 0 || n >= len(p) {
				return nil, fmt.Errorf("bad index %q", t)
			}
			parent = p[n]
		default:
			return nil, fmt.Errorf("cannot descend into %T at %q", parent, t)
		}
	}
	switch p := parent.(type) {
	case map[string]any:
		_, exists := p[last]
		switch op {
		case "add":
			p[last] = val
		case "replace":
			if !exists {
				return nil, fmt.Errorf("replace: no member %q", last)
			}
			p[last] = val
		case "remove":
			if !exists {
				return nil, fmt.Errorf("remove: no member %q", last)
			}
			delete(p, last)
		default:
			return nil, fmt.Errorf("unsupported op %q", op)
		}
		return root, nil
	case []any:
		n := len(p)
		if last != "-" {
			var err error
			if n, err = strconv.Atoi(last); err != nil || n < 0 {
				return nil, fmt.Errorf("bad index %q", last)
			}
		} else if op != "add" {
			return nil, fmt.Errorf("%s: index - only for add", op)
		}
		var out []any
		switch {
		case op == "add" && n <= len(p):
			out = append(append(append([]any{}, p[:n]...), val), p[n:]...)
		case op == "replace" && n < len(p):
			out = append([]any{}, p...)
			out[n] = val
		case op == "remove" && n < len(p):
			out = append(append([]any{}, p[:n]...), p[n+1:]...)
		default:
			return nil, fmt.Errorf("%s: index %d out of range (len %d)", op, n, len(p))
		}
		// Arrays are values: write the new one back into the parent's parent.
		if len(parentPath) == 0 {
			return out, nil
		}
		return applyOp(root, "replace", "/"+strings.Join(escape(parentPath), "/"), out)
	default:
		return nil, fmt.Errorf("cannot %s into %T", op, parent)
	}
}

func escape(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
	}
	return out
}
