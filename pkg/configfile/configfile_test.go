package configfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type testConfig struct {
	TypeMeta `json:",inline"`
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Nested   struct {
		Enabled bool `json:"enabled"`
	} `json:"nested"`
}

var testMeta = TypeMeta{APIVersion: "test.skerry.io/v1alpha1", Kind: "Test"}

func defaults() *testConfig {
	c := &testConfig{TypeMeta: testMeta, Name: "default", Port: 1}
	return c
}

func TestDecodeOverridesOnlyPresentKeys(t *testing.T) {
	c := defaults()
	err := Decode([]byte("apiVersion: test.skerry.io/v1alpha1\nkind: Test\nport: 42\nnested:\n  enabled: true\n"), testMeta, c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "default" || c.Port != 42 || !c.Nested.Enabled {
		t.Fatalf("got %+v", c)
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := map[string]struct {
		in   string
		want string
	}{
		"unknown key":      {"apiVersion: test.skerry.io/v1alpha1\nkind: Test\nprot: 1\n", `unknown field "prot"`},
		"unknown nested":   {"apiVersion: test.skerry.io/v1alpha1\nkind: Test\nnested:\n  enable: true\n", `unknown field "nested.enable"`},
		"duplicate key":    {"apiVersion: test.skerry.io/v1alpha1\nkind: Test\nport: 1\nport: 2\n", "port"},
		"wrong kind":       {"apiVersion: test.skerry.io/v1alpha1\nkind: Other\n", `want apiVersion "test.skerry.io/v1alpha1", kind "Test"`},
		"missing version":  {"kind: Test\n", `apiVersion ""`},
		"wrong type":       {"apiVersion: test.skerry.io/v1alpha1\nkind: Test\nport: eighty\n", "port"},
		"two documents":    {"apiVersion: test.skerry.io/v1alpha1\nkind: Test\n---\nport: 3\n", "more than one YAML document"},
		"empty":            {"", "empty configuration"},
		"not a mapping":    {"- a\n- b\n", "not a YAML mapping"},
		"broken yaml":      {"apiVersion: [\n", "not valid YAML"},
		"null":             {"null\n", `apiVersion ""`},
		"json wrong field": {`{"apiVersion":"test.skerry.io/v1alpha1","kind":"Test","x":1}`, `unknown field "x"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := Decode([]byte(tc.in), testMeta, defaults())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode(%q) = %v, want error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestLoadSizeLimit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.yaml")
	big := "apiVersion: test.skerry.io/v1alpha1\nkind: Test\nname: " + strings.Repeat("x", MaxSize) + "\n"
	if err := os.WriteFile(p, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Load(p, testMeta, defaults()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Load(big) = %v, want ErrTooLarge", err)
	}
}

func TestLoadMissingFileNamesIt(t *testing.T) {
	err := Load("/nonexistent/skerry.yaml", testMeta, defaults())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/skerry.yaml") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing) = %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	in := defaults()
	in.Port = 7
	out, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got := &testConfig{}
	if err := Decode(out, testMeta, got); err != nil {
		t.Fatalf("decode of marshalled config: %v\n%s", err, out)
	}
	if *got != *in {
		t.Fatalf("round trip: got %+v, want %+v", got, in)
	}
}

// FuzzDecode: no input may panic the decoder, and whatever it accepts must marshal again.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("apiVersion: test.skerry.io/v1alpha1\nkind: Test\nport: 42\n"))
	f.Add([]byte("apiVersion: test.skerry.io/v1alpha1\nkind: Test\nnested: {enabled: true}\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte(`{"apiVersion":"test.skerry.io/v1alpha1","kind":"Test"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := defaults()
		if err := Decode(data, testMeta, c); err != nil {
			return
		}
		if _, err := Marshal(c); err != nil {
			t.Fatalf("accepted config does not marshal: %v", err)
		}
	})
}
