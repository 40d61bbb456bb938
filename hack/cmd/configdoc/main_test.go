package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/skerry-io/skerry/pkg/configfile"
)

const root = "../../.."

// The checked-in reference is what the generator makes of the current types: the same
// check hack/verify-codegen.sh makes, here so `go test` catches it too.
func TestReferenceIsCurrent(t *testing.T) {
	got, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(root, "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/configuration.md is stale: run 'make generate' (or go run ./hack/cmd/configdoc -o docs/configuration.md)")
	}
	again, err := generate(root)
	if err != nil || !bytes.Equal(got, again) {
		t.Fatalf("output is not deterministic (err %v)", err)
	}
}

// Every key --defaultconfig prints has its own row, found independently of the generator's
// walk: through the marshalled defaults.
func TestEveryDefaultKeyIsDocumented(t *testing.T) {
	doc, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range binaries() {
		b, err := configfile.Marshal(bin.defaults)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, key := range leafKeys(m, "") {
			n++
			row := "| `" + key + "` |"
			if !bytes.Contains(doc, []byte(row)) {
				t.Errorf("%s: key %s of --defaultconfig has no row in the reference", bin.name, key)
			}
		}
		if n < 10 {
			t.Fatalf("%s: only %d keys in the defaults; the walk is broken", bin.name, n)
		}
	}
	if bytes.Contains(doc, []byte("`vm`")) {
		t.Error("a host-dependent default leaked into the reference")
	}
}

func leafKeys(m map[string]any, prefix string) []string {
	var keys []string
	for _, k := range sortedKeys(m) {
		if sub, ok := m[k].(map[string]any); ok && len(sub) > 0 {
			keys = append(keys, leafKeys(sub, prefix+k+".")...)
			continue
		}
		keys = append(keys, prefix+k)
	}
	return keys
}

// Fixtures: their doc comments are read from this file.

// fixtureConfig is a configuration whose fields exercise the walk.
type fixtureConfig struct {
	configfile.TypeMeta `json:",inline"`
	// Name is documented.
	Name string `json:"name"`
	// QPS and Burst share one comment.
	QPS   float64 `json:"qps"`
	Burst int     `json:"burst"`
	// Inner is a nested object.
	Inner     fixtureInner `json:"inner"`
	fixtureEm `json:",inline"`
	// Timeout is a Kubernetes duration.
	Timeout metav1.Duration `json:"timeout"`
	// Limit is optional.
	Limit *int64 `json:"limit,omitempty"`
	// Tags is a list.
	Tags []string `json:"tags"`
	//lint:ignore U1000 an unexported field is no key; the walk must skip it
	hidden string
}

// fixtureInner has Low and High bounds, documented here only.
type fixtureInner struct {
	Low  int `json:"low"`
	High int `json:"high"`
}

type fixtureEm struct {
	// Flat sits beside the embedding struct's keys.
	Flat bool `json:"flat"`
}

// fixtureUndocumented has a field nobody described.
type fixtureUndocumented struct {
	configfile.TypeMeta `json:",inline"`
	// Known is documented.
	Known   string `json:"known"`
	Mystery int    `json:"mystery"`
}

// fixtureForeign has a field of a type from outside the module the generator does not know.
type fixtureForeign struct {
	configfile.TypeMeta `json:",inline"`
	// Meta is an object the generator cannot describe.
	Meta metav1.ObjectMeta `json:"meta"`
}

var fixtureMeta = configfile.TypeMeta{APIVersion: "fixture/v1", Kind: "Fixture"}

func fixtureKeys(t *testing.T, defaults any, hostDependent map[string]string) ([]row, error) {
	t.Helper()
	module, err := moduleOf(root)
	if err != nil {
		t.Fatal(err)
	}
	return keys(binary{name: "fixture", meta: fixtureMeta, defaults: defaults, hostDependent: hostDependent}, newDocIndex(root, module))
}

func TestKeysTypesDefaultsAndDocs(t *testing.T) {
	limit := int64(3)
	rows, err := fixtureKeys(t, &fixtureConfig{
		TypeMeta: fixtureMeta, Name: "n1", QPS: 2.5, Burst: 5, Inner: fixtureInner{Low: 1, High: 9},
		Timeout: metav1.Duration{Duration: 90e9}, Limit: &limit,
	}, map[string]string{"name": "the host name"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join([]string{r.key, r.typ, r.def, r.doc}, " | "))
	}
	want := []string{
		"apiVersion | string | `fixture/v1` | The schema version of the file; required, exactly this value.",
		"kind | string | `Fixture` | The kind of configuration; required, exactly this value.",
		"name | string | the host name | Name is documented.",
		"qps | number | `2.5` | QPS and Burst share one comment.",
		"burst | integer | `5` | QPS and Burst share one comment.",
		"inner | object |  | Inner is a nested object.",
		"inner.low | integer | `1` | fixtureInner has Low and High bounds, documented here only.",
		"inner.high | integer | `9` | fixtureInner has Low and High bounds, documented here only.",
		"flat | boolean | `false` | Flat sits beside the embedding struct's keys.",
		"timeout | duration | `1m30s` | Timeout is a Kubernetes duration.",
		"limit | integer | `3` | Limit is optional.",
		"tags | list of string | unset | Tags is a list.",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUndocumentedFieldIsAnError(t *testing.T) {
	_, err := fixtureKeys(t, &fixtureUndocumented{TypeMeta: fixtureMeta}, nil)
	if err == nil || !strings.Contains(err.Error(), "mystery") || strings.Contains(err.Error(), "known") {
		t.Fatalf("got %v, want an error naming mystery only", err)
	}
}

func TestUnknownForeignTypeIsAnError(t *testing.T) {
	_, err := fixtureKeys(t, &fixtureForeign{TypeMeta: fixtureMeta}, nil)
	if err == nil || !strings.Contains(err.Error(), "meta: type v1.ObjectMeta is not known") {
		t.Fatalf("got %v, want the key and type named", err)
	}
}

func TestMarkdownText(t *testing.T) {
	for in, want := range map[string]string{
		"token <hash>.<secret>":            "token &lt;hash&gt;.&lt;secret&gt;",
		"code `<dataDir>/certs` stays":     "code `<dataDir>/certs` stays",
		"a | b":                            `a \| b`,
		"see [AutonomyAnnotation] and [0]": "see `AutonomyAnnotation` and [0]",
		"see [eventbus.Default].":          "see `eventbus.Default`.",
	} {
		if got := markdownText(in); got != want {
			t.Errorf("markdownText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestModuleOf(t *testing.T) {
	dir := t.TempDir()
	if _, err := moduleOf(dir); err == nil {
		t.Fatal("no go.mod: want an error")
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("// c\nmodule \"example.com/x\"\n\ngo 1.26\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := moduleOf(dir); err != nil || m != "example.com/x" {
		t.Fatalf("got %q, %v", m, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("go 1.26\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := moduleOf(dir); err == nil || !strings.Contains(err.Error(), "no module line") {
		t.Fatalf("got %v", err)
	}
}
