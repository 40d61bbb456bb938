package v1beta1_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
)

// These tests read the generated CRDs in manifests/crds and check them against the examples and
// the Go types. The schema check is a small structural walk (unknown fields, types, enums,
// required fields), which is what the API server's pruning and strict field validation reject;
// the e2e tests apply the same examples to a real API server.

const crdDir = "../../../manifests/crds"

type crdFile struct {
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind     string `json:"kind"`
			ListKind string `json:"listKind"`
			Plural   string `json:"plural"`
			Singular string `json:"singular"`
		} `json:"names"`
		Scope    string `json:"scope"`
		Versions []struct {
			Name    string `json:"name"`
			Served  bool   `json:"served"`
			Storage bool   `json:"storage"`
			Schema  struct {
				OpenAPIV3Schema *schemaProps `json:"openAPIV3Schema"`
			} `json:"schema"`
			Subresources struct {
				Status *struct{} `json:"status"`
			} `json:"subresources"`
			AdditionalPrinterColumns []struct {
				Name     string `json:"name"`
				JSONPath string `json:"jsonPath"`
			} `json:"additionalPrinterColumns"`
		} `json:"versions"`
	} `json:"spec"`
}

type schemaProps struct {
	Type                 string                  `json:"type"`
	Format               string                  `json:"format"`
	Enum                 []any                   `json:"enum"`
	Required             []string                `json:"required"`
	Nullable             bool                    `json:"nullable"`
	Properties           map[string]*schemaProps `json:"properties"`
	AdditionalProperties *schemaProps            `json:"additionalProperties"`
	Items                *schemaProps            `json:"items"`
	PreserveUnknown      bool                    `json:"x-kubernetes-preserve-unknown-fields"`
}

// loadCRD returns the CRD for kind from manifests/crds, by its generated file name.
func loadCRD(t *testing.T, plural string) *crdFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(crdDir, devicesv1beta1.GroupName+"_"+plural+".yaml"))
	if err != nil {
		t.Fatalf("%v (run make generate)", err)
	}
	var crd crdFile
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	return &crd
}

var crdKinds = []struct {
	kind, plural string
	goType       any
	status       bool
	columns      []string
}{
	{"Device", "devices", devicesv1beta1.Device{}, true, []string{"Node", "Model", "Protocol", "Age"}},
	{"DeviceModel", "devicemodels", devicesv1beta1.DeviceModel{}, false, []string{"Protocol", "Age"}},
	{"DeviceStatus", "devicestatuses", devicesv1beta1.DeviceStatus{}, true, []string{"State", "Last-Online", "Age"}},
}

func v1beta1Schema(t *testing.T, plural string) *schemaProps {
	t.Helper()
	crd := loadCRD(t, plural)
	for _, v := range crd.Spec.Versions {
		if v.Name == "v1beta1" {
			return v.Schema.OpenAPIV3Schema
		}
	}
	t.Fatalf("CRD %s has no v1beta1", plural)
	return nil
}

func TestCRDNamesAndVersions(t *testing.T) {
	for _, k := range crdKinds {
		t.Run(k.kind, func(t *testing.T) {
			crd := loadCRD(t, k.plural)
			s := crd.Spec
			if s.Group != devicesv1beta1.GroupName || s.Names.Kind != k.kind || s.Names.Plural != k.plural ||
				s.Names.ListKind != k.kind+"List" || s.Names.Singular != strings.ToLower(k.kind) || s.Scope != "Namespaced" {
				t.Errorf("names = %s %+v %s", s.Group, s.Names, s.Scope)
			}
			if len(s.Versions) != 1 || s.Versions[0].Name != "v1beta1" || !s.Versions[0].Served || !s.Versions[0].Storage {
				t.Fatalf("versions = %+v, want only v1beta1, served and stored", s.Versions)
			}
			v := s.Versions[0]
			if (v.Subresources.Status != nil) != k.status {
				t.Errorf("status subresource = %v, want %v", v.Subresources.Status != nil, k.status)
			}
			var cols []string
			for _, c := range v.AdditionalPrinterColumns {
				cols = append(cols, c.Name)
			}
			if !slices.Equal(cols, k.columns) {
				t.Errorf("print columns = %v, want %v", cols, k.columns)
			}
		})
	}
}

func TestExamplesMatchCRDSchema(t *testing.T) {
	plurals := map[string]string{}
	for _, k := range crdKinds {
		plurals[k.kind] = k.plural
	}
	for _, ex := range examples {
		t.Run(ex.file, func(t *testing.T) {
			var doc map[string]any
			if err := yaml.Unmarshal(readExample(t, ex.file), &doc); err != nil {
				t.Fatal(err)
			}
			for _, e := range validate(doc, v1beta1Schema(t, plurals[ex.kind])) {
				t.Error(e)
			}
		})
	}
}

// TestCRDSchemaAcceptsAndRejects pins the validation rules: as strict as KubeEdge's CRDs where
// KubeEdge validates (enums of model properties), permissive everywhere else.
func TestCRDSchemaAcceptsAndRejects(t *testing.T) {
	cases := []struct {
		name, plural, doc string
		wantErr           string // empty: must validate
	}{
		{"model property type enum", "devicemodels",
			`{"spec":{"properties":[{"name":"p","type":"LONG"}]}}`, "spec.properties[0].type"},
		{"model access mode enum", "devicemodels",
			`{"spec":{"properties":[{"name":"p","accessMode":"WriteOnly"}]}}`, "spec.properties[0].accessMode"},
		{"model minimum is a string", "devicemodels",
			`{"spec":{"properties":[{"name":"p","minimum":5}]}}`, "spec.properties[0].minimum"},
		{"unknown spec field", "devices", `{"spec":{"nodename":"edge-1"}}`, "spec.nodename"},
		{"db method names are case-sensitive", "devices",
			`{"spec":{"properties":[{"pushMethod":{"dbMethod":{"tdengine":{}}}}]}}`, "spec.properties[0].pushMethod.dbMethod.tdengine"},
		{"cycles are integers", "devices", `{"spec":{"properties":[{"reportCycle":"10s"}]}}`, "spec.properties[0].reportCycle"},
		{"configData in the DMI shape", "devices",
			`{"spec":{"protocol":{"configData":{"data":{"ip":"10.0.0.1","nested":{"a":[1,2]}}}}}}`, ""},
		{"configData with arbitrary fields", "devices",
			`{"spec":{"properties":[{"visitors":{"configData":{"register":"HoldingRegister","offset":2,"isSwap":true}}}]}}`, ""},
		{"desired without value (KubeEdge requires it; we need not)", "devices",
			`{"spec":{"properties":[{"name":"p","desired":{"metadata":{"type":"int"}}}]}}`, ""},
		{"Kwdb, which KubeEdge's CRD has", "devices",
			`{"spec":{"properties":[{"pushMethod":{"dbMethod":{"Kwdb":{"KWDBClientConfig":{"addr":"a","dbName":"d"}}}}}]}}`, ""},
		{"legacy Device status keeps unknown fields", "devices",
			`{"status":{"reportToCloud":true,"twins":[{"propertyName":"p"}],"state":"online"}}`, ""},
		{"DeviceStatus with KubeEdge's empty spec", "devicestatuses", `{"spec":{},"status":{"state":"ok"}}`, ""},
		{"state disconnected", "devicestatuses", `{"status":{"state":"disconnected"}}`, ""},
		{"state outside the documented set", "devicestatuses", `{"status":{"state":"rebooting"}}`, ""},
		{"extensions are free-form", "devicestatuses", `{"status":{"extensions":{"a":{"b":[1,"x",null]}}}}`, ""},
		{"unknown twin field", "devicestatuses", `{"status":{"twins":[{"propertyName":"p","expected":{}}]}}`, "status.twins[0].expected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var doc map[string]any
			if err := yaml.Unmarshal([]byte(c.doc), &doc); err != nil {
				t.Fatal(err)
			}
			errs := validate(doc, v1beta1Schema(t, c.plural))
			switch {
			case c.wantErr == "" && len(errs) > 0:
				t.Errorf("rejected: %v", errs)
			case c.wantErr != "" && (len(errs) != 1 || !strings.HasPrefix(errs[0], c.wantErr+":")):
				t.Errorf("errors = %v, want one about %s", errs, c.wantErr)
			}
		})
	}
}

// TestModelPropertyEnums pins the two enums of model properties to KubeEdge's values.
func TestModelPropertyEnums(t *testing.T) {
	prop := v1beta1Schema(t, "devicemodels").Properties["spec"].Properties["properties"].Items
	enum := func(name string) []any {
		s := prop.Properties[name]
		if s == nil {
			t.Fatalf("no %s in the model property schema", name)
		}
		return s.Enum
	}
	types := []any{"INT", "FLOAT", "DOUBLE", "STRING", "BOOLEAN", "BYTES", "STREAM"}
	if got := enum("type"); !slices.Equal(got, types) {
		t.Errorf("type enum = %v, want %v", got, types)
	}
	modes := []any{"ReadWrite", "ReadOnly"}
	if got := enum("accessMode"); !slices.Equal(got, modes) {
		t.Errorf("accessMode enum = %v, want %v", got, modes)
	}
}

// validate walks doc against a structural schema and returns one message per violation.
func validate(doc map[string]any, root *schemaProps) []string {
	var errs []string
	// metadata is validated by the API server itself, not by the CRD's schema.
	rest := map[string]any{}
	for k, v := range doc {
		if k != "metadata" {
			rest[k] = v
		}
	}
	walk("", rest, root, &errs)
	sort.Strings(errs)
	return errs
}

func walk(path string, v any, s *schemaProps, errs *[]string) {
	fail := func(format string, args ...any) {
		*errs = append(*errs, strings.TrimPrefix(path, ".")+": "+fmt.Sprintf(format, args...))
	}
	if v == nil {
		if !s.Nullable && !(s.PreserveUnknown && s.Type == "") {
			fail("null is not allowed")
		}
		return
	}
	if len(s.Enum) > 0 && !slices.Contains(s.Enum, v) {
		fail("%v is not one of %v", v, s.Enum)
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			fail("must be an object, not %T", v)
			return
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				fail("missing required field %q", r)
			}
		}
		for k, e := range m {
			switch {
			case s.Properties[k] != nil:
				walk(path+"."+k, e, s.Properties[k], errs)
			case s.AdditionalProperties != nil:
				walk(path+"."+k, e, s.AdditionalProperties, errs)
			case !s.PreserveUnknown:
				*errs = append(*errs, strings.TrimPrefix(path+"."+k, ".")+": unknown field")
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			fail("must be an array, not %T", v)
			return
		}
		for i, e := range a {
			walk(fmt.Sprintf("%s[%d]", path, i), e, s.Items, errs)
		}
	case "string":
		if _, ok := v.(string); !ok {
			fail("must be a string, not %T", v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			fail("must be a boolean, not %T", v)
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != math.Trunc(f) {
			fail("must be an integer, not %v", v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			fail("must be a number, not %T", v)
		}
	case "":
		if !s.PreserveUnknown {
			fail("schema has neither a type nor x-kubernetes-preserve-unknown-fields")
		}
	default:
		fail("unexpected schema type %q", s.Type)
	}
}

// TestCRDSchemaMatchesGoTypes walks each Go type alongside its CRD schema: every JSON field of
// the type must be in the schema with a matching type, and every schema property must be a field
// of the type. Free-form fields must be objects that preserve unknown fields.
func TestCRDSchemaMatchesGoTypes(t *testing.T) {
	for _, k := range crdKinds {
		t.Run(k.kind, func(t *testing.T) {
			root := v1beta1Schema(t, k.plural)
			typ := reflect.TypeOf(k.goType)
			for i := range typ.NumField() {
				f := typ.Field(i)
				name := jsonName(f)
				if f.Anonymous || name == "metadata" {
					continue
				}
				compareType(t, name, f.Type, root.Properties[name])
			}
		})
	}
}

var (
	freeFormType  = reflect.TypeFor[devicesv1beta1.FreeForm]()
	objectMetaTyp = reflect.TypeFor[metav1.ObjectMeta]()
)

func compareType(t *testing.T, path string, typ reflect.Type, s *schemaProps) {
	t.Helper()
	if s == nil {
		t.Errorf("%s: in the Go type but not in the CRD", path)
		return
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := ""
	switch {
	case typ == freeFormType:
		if s.Type != "object" || !s.PreserveUnknown {
			t.Errorf("%s: free-form field has schema type %q, preserve-unknown-fields %v", path, s.Type, s.PreserveUnknown)
		}
		return
	case typ == objectMetaTyp:
		return
	}
	switch typ.Kind() {
	case reflect.String:
		want = "string"
	case reflect.Bool:
		want = "boolean"
	case reflect.Int32, reflect.Int64, reflect.Int:
		want = "integer"
	case reflect.Float32, reflect.Float64:
		want = "number"
	case reflect.Slice:
		want = "array"
		if s.Items != nil {
			compareType(t, path+"[]", typ.Elem(), s.Items)
		}
	case reflect.Map:
		want = "object"
		compareType(t, path+"{}", typ.Elem(), s.AdditionalProperties)
	case reflect.Struct:
		want = "object"
		seen := map[string]bool{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := jsonName(f)
			if name == "" {
				continue
			}
			seen[name] = true
			compareType(t, path+"."+name, f.Type, s.Properties[name])
		}
		for name := range s.Properties {
			if !seen[name] {
				t.Errorf("%s.%s: in the CRD but not in the Go type", path, name)
			}
		}
	default:
		t.Errorf("%s: unexpected Go kind %s", path, typ.Kind())
	}
	if s.Type != want {
		t.Errorf("%s: CRD type %q, Go type %s wants %q", path, s.Type, typ, want)
	}
}

func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return ""
	}
	return name
}
