package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	cloudconfig "github.com/skerry-io/skerry/cloud/config"
	edgeconfig "github.com/skerry-io/skerry/edge/config"
	"github.com/skerry-io/skerry/pkg/configfile"
)

// binary is one configuration file to document.
type binary struct {
	name     string
	meta     configfile.TypeMeta
	defaults any // a pointer to the config struct holding its defaults
	// hostDependent describes defaults computed on the host, by key, instead of this
	// machine's value (which would make the output differ from one machine to the next).
	hostDependent map[string]string
}

func binaries() []binary {
	return []binary{
		{name: "cloudcore", meta: cloudconfig.Meta, defaults: cloudconfig.Default()},
		{name: "edgecore", meta: edgeconfig.Meta, defaults: edgeconfig.Default(),
			hostDependent: map[string]string{"nodeName": "the host name, in lower case"}},
	}
}

// row is one key of the reference.
type row struct {
	key, typ, def, doc string
}

// generate renders docs/configuration.md for the module at root.
func generate(root string) ([]byte, error) {
	module, err := moduleOf(root)
	if err != nil {
		return nil, err
	}
	docs := newDocIndex(root, module)
	var b bytes.Buffer
	b.WriteString(intro)
	for _, bin := range binaries() {
		rows, err := keys(bin, docs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bin.name, err)
		}
		t := reflect.TypeOf(bin.defaults).Elem()
		td, err := docs.lookup(t.PkgPath(), t.Name())
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "\n## %s\n\n", bin.name)
		if td != nil && td.doc != "" {
			fmt.Fprintf(&b, "%s\n\n", markdownText(td.doc))
		}
		fmt.Fprintf(&b, "`%s --defaultconfig` prints every key below; `%s --minconfig` the few usually set.\n\n", bin.name, bin.name)
		b.WriteString("| Key | Type | Default | Description |\n|---|---|---|---|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.key, r.typ, r.def, markdownText(r.doc))
		}
	}
	return b.Bytes(), nil
}

// keys lists every key of bin's configuration in file order, with its type, default and doc.
func keys(bin binary, docs *docIndex) ([]row, error) {
	j, err := configfile.Marshal(bin.defaults)
	if err != nil {
		return nil, err
	}
	var defaults map[string]any
	if err := yaml.Unmarshal(j, &defaults); err != nil {
		return nil, err
	}
	w := walker{docs: docs, defaults: defaults, hostDependent: bin.hostDependent}
	w.rows = []row{
		{key: "apiVersion", typ: "string", def: code(bin.meta.APIVersion), doc: "The schema version of the file; required, exactly this value."},
		{key: "kind", typ: "string", def: code(bin.meta.Kind), doc: "The kind of configuration; required, exactly this value."},
	}
	if err := w.walk(reflect.TypeOf(bin.defaults).Elem(), ""); err != nil {
		return nil, err
	}
	if len(w.undocumented) > 0 {
		return nil, fmt.Errorf("keys without a doc comment on their Go field: %s", strings.Join(w.undocumented, ", "))
	}
	return w.rows, nil
}

type walker struct {
	docs          *docIndex
	defaults      map[string]any
	hostDependent map[string]string
	rows          []row
	undocumented  []string
}

var typeMeta = reflect.TypeFor[configfile.TypeMeta]()

func (w *walker) walk(t reflect.Type, prefix string) error {
	td, err := w.docs.lookup(t.PkgPath(), t.Name())
	if err != nil {
		return err
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || f.Type == typeMeta {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		// An embedded struct without a key is inlined, as encoding/json does, even when its
		// type is unexported: its keys sit beside this struct's.
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			if err := w.walk(ft, prefix); err != nil {
				return err
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		key := prefix + name
		doc := ""
		if td != nil {
			doc = td.fields[f.Name]
		}
		if doc == "" {
			w.undocumented = append(w.undocumented, key)
		}
		if typ, ok := leafType(ft); ok {
			w.rows = append(w.rows, row{key: key, typ: typ, def: w.defaultOf(key), doc: doc})
			continue
		}
		if ft.Kind() != reflect.Struct || !w.inModule(ft) {
			return fmt.Errorf("%s: type %s is not known to configdoc; add it to leafType", key, ft)
		}
		w.rows = append(w.rows, row{key: key, typ: "object", doc: doc})
		if err := w.walk(ft, key+"."); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) inModule(t reflect.Type) bool {
	rel, ok := strings.CutPrefix(t.PkgPath(), w.docs.module)
	return ok && (rel == "" || strings.HasPrefix(rel, "/"))
}

// leafType names the YAML type of t when t is written as one value (scalar, list or map).
func leafType(t reflect.Type) (string, bool) {
	switch t {
	case reflect.TypeFor[metav1.Duration](), reflect.TypeFor[edgeconfig.Duration](), reflect.TypeFor[time.Duration]():
		return "duration", true
	case reflect.TypeFor[resource.Quantity]():
		return "quantity", true
	case reflect.TypeFor[corev1.ResourceList]():
		return "map of resource name to quantity", true
	case reflect.TypeFor[corev1.Taint]():
		return "taint (key, value, effect)", true
	}
	switch t.Kind() {
	case reflect.String:
		return "string", true
	case reflect.Bool:
		return "boolean", true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer", true
	case reflect.Float32, reflect.Float64:
		return "number", true
	case reflect.Slice:
		if e, ok := leafType(t.Elem()); ok {
			return "list of " + e, true
		}
	case reflect.Map:
		k, okK := leafType(t.Key())
		v, okV := leafType(t.Elem())
		if okK && okV {
			return "map of " + k + " to " + v, true
		}
	}
	return "", false
}

// defaultOf renders the default of the dotted key as --defaultconfig prints it.
func (w *walker) defaultOf(key string) string {
	if d, ok := w.hostDependent[key]; ok {
		return d
	}
	var v any = w.defaults
	for _, part := range strings.Split(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "unset"
		}
		if v, ok = m[part]; !ok {
			return "unset"
		}
	}
	switch v := v.(type) {
	case nil:
		return "unset"
	case string:
		if v == "" {
			return code(`""`)
		}
		return code(v)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return "unset"
	}
	return code(string(j))
}

func code(s string) string { return "`" + strings.ReplaceAll(s, "|", `\|`) + "`" }

// docLink is a Go doc link, "[Name]" or "[pkg.Name]".
var docLink = regexp.MustCompile(`\[([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?)\]`)

// markdownText makes a doc comment safe in a table cell: Go doc links become code, pipes are
// escaped, and outside code spans angle brackets are entities so "<secret>" is not taken for
// HTML.
func markdownText(s string) string {
	s = docLink.ReplaceAllString(s, "`$1`")
	parts := strings.Split(s, "`")
	for i := range parts {
		parts[i] = strings.ReplaceAll(parts[i], "|", `\|`)
		if i%2 == 0 {
			parts[i] = strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(parts[i])
		}
	}
	return strings.Join(parts, "`")
}

// sortedKeys is used by the tests to list a default document's keys.
func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

const intro = `<!-- Generated by hack/cmd/configdoc from the types in cloud/config and edge/config: do not edit.
     Change the Go doc comments and run 'make generate'. -->

# Configuration reference

cloudcore and edgecore each read one versioned YAML file, given with ` + "`--config`" + `. Every key
is optional: a key the file leaves out keeps the default listed here, and without ` + "`--config`" + `
the defaults apply as a whole (edgecore still needs ` + "`hub.server`" + `).

- ` + "`cloudcore --defaultconfig`" + ` and ` + "`edgecore --defaultconfig`" + ` print the full default
  configuration, every key with its value.
- ` + "`cloudcore --minconfig`" + ` and ` + "`edgecore --minconfig`" + ` print a minimal file: only the keys an
  operator normally sets, with ` + "`<placeholders>`" + ` to fill in.
- Decoding is strict: an unknown or misspelt key, a duplicate key, a second YAML document, or an
  ` + "`apiVersion`/`kind`" + ` other than the ones below is an error naming the key, never a setting
  silently ignored. Keys are case-sensitive.
- The configuration is validated before anything starts; every invalid setting is reported at
  once, each naming its key and what would be valid (bad addresses, missing files, two listeners
  on one port, options that contradict each other).
- Durations are Go duration strings (` + "`15s`, `1m30s`, `8760h`" + `); quantities are Kubernetes
  quantities (` + "`100Mi`, `500m`" + `).
- ` + "`keadm init --set key=value`" + ` (cloudcore) and ` + "`keadm join --set key=value`" + ` (edgecore) take
  the keys below in the same dotted form, e.g. ` + "`--set hub.quic.enable=true`" + ` or
  ` + "`--set node.labels={zone: a}`" + `; the value is read as YAML, and unknown keys are refused the
  same way.

Keys of type object group the keys that follow them; "unset" means the key is absent from
` + "`--defaultconfig`" + ` and the description says what its absence means.
`
