package expand

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "B": "b", "EMPTY": "", "NESTED": "$(A)"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"$(A)", "a"},
		{"$(A)$(B)", "ab"},
		{"x$(A)y", "xay"},
		{"$(UNKNOWN)", "$(UNKNOWN)"},
		{"$$(A)", "$(A)"},
		{"$$$(A)", "$a"},
		{"$$$$(A)", "$$(A)"},
		{"$", "$"},
		{"a$", "a$"},
		{"$A", "$A"},
		{"$(A", "$(A"},
		{"$()", "$()"},
		{"$(EMPTY)", ""},
		{"$(NESTED)", "$(A)"},
		{"$(A)$", "a$"},
		{"(A)", "(A)"},
		{"$)", "$)"},
		{"$(A$(B))", "$(A$(B))"},
		{"$(A)$$B", "a$B"},
	} {
		if got := Expand(tc.in, lookup); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "$", "$$", "$(A)", "$(", "$(A", "a$(B)c$$(D)", "$$$", "(", ")"} {
		f.Add(s)
	}
	none := func(string) (string, bool) { return "", false }
	f.Fuzz(func(t *testing.T, s string) {
		// Escaping every $ gives back the input, whatever is defined.
		esc := strings.ReplaceAll(s, "$", "$$")
		if got := Expand(esc, func(string) (string, bool) { return "X", true }); got != s {
			t.Fatalf("Expand(escape(%q)) = %q", s, got)
		}
		// Without a $ nothing changes; with nothing defined, nothing grows.
		got := Expand(s, none)
		if !strings.Contains(s, "$") && got != s {
			t.Fatalf("Expand(%q) = %q", s, got)
		}
		if len(got) > len(s) {
			t.Fatalf("Expand(%q) = %q grew with no variables", s, got)
		}
	})
}
