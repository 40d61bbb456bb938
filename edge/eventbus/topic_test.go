package eventbus

import (
	"strings"
	"testing"
)

func TestValidateFilter(t *testing.T) {
	for _, f := range []string{"#", "+", "a", "a/b", "a/+/c", "a/#", "+/+", "/", "a//b", "$hw/events/upload/#", "$SYS/#", "a/ b"} {
		if err := ValidateFilter(f); err != nil {
			t.Errorf("ValidateFilter(%q): %v", f, err)
		}
	}
	for _, f := range []string{"", "#/a", "a/#/b", "a#", "a/b#", "a+", "a/+b", "$share/g/a", "a\x00b", "\xff", strings.Repeat("a", maxTopicBytes+1)} {
		if err := ValidateFilter(f); err == nil {
			t.Errorf("ValidateFilter(%q) accepted", f)
		}
	}
}

func TestValidateTopic(t *testing.T) {
	for _, topic := range []string{"a", "a/b", "/", "$hw/events/device/default/d/twin/update", "SYS/dis/upload_records"} {
		if err := ValidateTopic(topic); err != nil {
			t.Errorf("ValidateTopic(%q): %v", topic, err)
		}
	}
	for _, topic := range []string{"", "a/+", "#", "a/#", "a\x00"} {
		if err := ValidateTopic(topic); err == nil {
			t.Errorf("ValidateTopic(%q) accepted", topic)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a", false},
		{"a/+", "a/", true},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"#", "a/b", true},
		{"+/+", "/x", true},
		{"+", "$SYS", false},
		{"#", "$hw/events/upload/x", false},
		{"$hw/events/upload/#", "$hw/events/upload/x/y", true},
		{"$hw/events/device/+/+/twin/update", "$hw/events/device/default/d/twin/update", true},
		{"$hw/events/device/+/+/twin/update", "$hw/events/device/default/d/twin/update/result", false},
	} {
		if got := matchFilter(tc.filter, tc.topic); got != tc.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

// FuzzValidateFilter: validation and matching never panic; a valid filter without
// wildcards is a valid topic that matches itself; on valid input matchFilter agrees with a
// plain level-by-level reference.
func FuzzValidateFilter(f *testing.F) {
	for _, s := range [][2]string{{"a/+/c", "a/b/c"}, {"#", "x"}, {"a/#", "a"}, {"$hw/events/upload/#", "$hw/events/upload/t"}, {"a/#/b", "a"}, {"+", "$SYS"}, {"", ""}, {"a//+", "a//"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		ferr := ValidateFilter(filter)
		terr := ValidateTopic(topic)
		if ferr == nil && !strings.ContainsAny(filter, "+#") {
			if ValidateTopic(filter) != nil {
				t.Fatalf("filter %q without wildcards is not a valid topic", filter)
			}
			if !matchFilter(filter, filter) {
				t.Fatalf("filter %q does not match itself", filter)
			}
		}
		if ferr != nil || terr != nil {
			return
		}
		got := matchFilter(filter, topic)
		if want := matchByLevels(filter, topic); got != want {
			t.Fatalf("matchFilter(%q, %q) = %v, reference says %v", filter, topic, got, want)
		}
	})
}

// matchByLevels is a plain reference implementation of MQTT matching.
func matchByLevels(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl, tl := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, l := range fl {
		if l == "#" {
			return true
		}
		if i >= len(tl) || (l != "+" && l != tl[i]) {
			return false
		}
	}
	return len(fl) == len(tl)
}
