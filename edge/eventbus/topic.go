package eventbus

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxTopicBytes is MQTT's limit on a topic name or filter (a two-byte length prefix).
const maxTopicBytes = 65535

// ValidateTopic checks a topic name to publish on: MQTT's rules for topic names, which
// contain no wildcard.
func ValidateTopic(topic string) error {
	if err := validateTopicString(topic); err != nil {
		return err
	}
	if strings.ContainsAny(topic, "+#") {
		return fmt.Errorf("topic %q: wildcards + and # are only allowed in subscription filters", topic)
	}
	return nil
}

// ValidateFilter checks a subscription filter: '+' stands alone in its level, '#' stands
// alone in the last level. Shared subscriptions ($share/...) are refused: a handler of
// edgecore wants every message of its filter.
func ValidateFilter(filter string) error {
	if err := validateTopicString(filter); err != nil {
		return err
	}
	if strings.HasPrefix(filter, "$share/") {
		return fmt.Errorf("filter %q: shared subscriptions are not supported", filter)
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("filter %q: '#' must be the last level", filter)
		case l != "#" && strings.Contains(l, "#"):
			return fmt.Errorf("filter %q: '#' must stand alone in its level", filter)
		case l != "+" && strings.Contains(l, "+"):
			return fmt.Errorf("filter %q: '+' must stand alone in its level", filter)
		}
	}
	return nil
}

func validateTopicString(s string) error {
	switch {
	case s == "":
		return errors.New("empty topic")
	case len(s) > maxTopicBytes:
		return fmt.Errorf("topic of %d bytes: MQTT allows at most %d", len(s), maxTopicBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("topic %q: not valid UTF-8", s)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("topic %q: contains a NUL character", s)
	}
	return nil
}

// matchFilter reports whether topic (a valid topic name) matches filter (a valid filter).
// Wildcards in the first level do not match topics that start with '$' ($SYS, $hw), as
// MQTT requires.
func matchFilter(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true // also matches the parent level: a/# matches a
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			return frest == "#"
		case !fmore:
			return false
		}
		filter, topic = frest, trest
	}
}
