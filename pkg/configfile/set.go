package configfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// MaxSetLength bounds one --set assignment; configuration values are short.
const MaxSetLength = 4096

// Set applies one command-line assignment "dotted.key=value" (keadm's --set) to cfg, a pointer to
// a configuration holding its defaults or a decoded file. Keys are the file's keys. The value is
// read as a YAML flow value, so `true`, `30`, `10s`, `[a, b]` and `{k: v}` all mean what they
// would in the file; a value that only fits the key as text (a numeric node name) is taken as text.
// Unknown keys are an error naming the key, as in the file; other keys keep their values.
func Set(cfg any, assignment string) error {
	if len(assignment) > MaxSetLength {
		return fmt.Errorf("--set: longer than %d bytes", MaxSetLength)
	}
	key, raw, ok := strings.Cut(assignment, "=")
	if !ok {
		return fmt.Errorf("--set %q: want key=value", assignment)
	}
	path := strings.Split(key, ".")
	for _, p := range path {
		if p == "" {
			return fmt.Errorf("--set %q: empty key segment in %q", assignment, key)
		}
	}
	if path[0] == "apiVersion" || path[0] == "kind" {
		return fmt.Errorf("--set %s: the schema is fixed", key)
	}
	var typed any
	if err := yaml.Unmarshal([]byte(raw), &typed); err != nil {
		typed = raw
	}
	err := setPath(cfg, path, typed)
	if err != nil && typed != any(raw) {
		// "123" for a string key, "on" for a name: the text itself may be what was meant.
		if err2 := setPath(cfg, path, raw); err2 == nil {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("--set %s: %w", key, err)
	}
	return nil
}

// setPath decodes {p0: {p1: ... value}} strictly into cfg: present keys override, unknown ones fail.
func setPath(cfg any, path []string, value any) error {
	doc := value
	for i := len(path) - 1; i >= 0; i-- {
		doc = map[string]any{path[i]: doc}
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, cfg)
	if err != nil {
		return err
	}
	if len(strictErrs) > 0 {
		return errors.Join(strictErrs...)
	}
	return nil
}
