package wire

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// decoder is a cursor over one JSON text. It is hand-written rather than built on
// encoding/json because the envelope needs what encoding/json does not offer cheaply:
// duplicate-key detection, exact (case-sensitive) key matching, and the content's raw bytes
// without a second decoding pass.
//
// JSON accepted is RFC 8259 with two restrictions: strings must be valid UTF-8 (a Go peer's
// encoding/json never writes anything else, and accepting invalid bytes would let two parsers
// see different text), and arrays and objects nest at most maxDepth deep.
type decoder struct {
	data     []byte
	pos      int
	maxDepth int
	// spaced records that skipSpace skipped something; the content copy uses it to tell
	// whether it must compact.
	spaced bool
	// inContent prefixes syntax errors so the error says where the bad byte is.
	inContent bool
}

func (d *decoder) errorf(format string, args ...any) error {
	where := ""
	if d.inContent {
		where = "content: "
	}
	return fmt.Errorf("%w: %soffset %d: %s", ErrInvalid, where, d.pos, fmt.Sprintf(format, args...))
}

// peek returns the current byte, or 0 at the end of input (0 is never valid JSON there).
func (d *decoder) peek() byte {
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
			d.spaced = true
		default:
			return
		}
	}
}

func (d *decoder) unexpected(what string) error {
	if d.pos >= len(d.data) {
		return d.errorf("unexpected end of input, want %s", what)
	}
	return d.errorf("unexpected %q, want %s", d.data[d.pos], what)
}

// nextMember advances to the next member of an object whose '{' has been consumed. It
// returns the member's key with the cursor on the value, or ok=false after the closing '}'.
// first must start true and is maintained by nextMember. The key is unescaped only if
// decodeKey is set (envelope keys); content keys are just checked.
func (d *decoder) nextMember(first *bool, decodeKey bool) (key []byte, ok bool, err error) {
	d.skipSpace()
	if *first {
		*first = false
		if d.peek() == '}' {
			d.pos++
			return nil, false, nil
		}
	} else {
		switch d.peek() {
		case '}':
			d.pos++
			return nil, false, nil
		case ',':
			d.pos++
			d.skipSpace()
		default:
			return nil, false, d.unexpected("',' or '}'")
		}
	}
	if d.peek() != '"' {
		return nil, false, d.unexpected("an object key")
	}
	raw, escaped, err := d.scanString()
	if err != nil {
		return nil, false, err
	}
	key = raw
	if escaped && decodeKey {
		// Keys are compared after unescaping, as any JSON parser does, so "\u0072oute"
		// cannot sneak a second route past the duplicate check.
		if key, err = d.unescape(raw); err != nil {
			return nil, false, err
		}
	}
	d.skipSpace()
	if d.peek() != ':' {
		return nil, false, d.unexpected("':'")
	}
	d.pos++
	d.skipSpace()
	return key, true, nil
}

// scanString consumes a string at the cursor (which is on the opening quote) and returns the
// bytes between the quotes, still escaped, and whether any escape occurred.
func (d *decoder) scanString() (raw []byte, escaped bool, err error) {
	d.pos++ // opening quote
	start := d.pos
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' {
			d.pos++ // the common case, kept to one branch
			continue
		}
		switch {
		case c == '"':
			raw = d.data[start:d.pos]
			d.pos++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			d.pos++
			switch d.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.pos++
			case 'u':
				d.pos++
				if d.pos+4 > len(d.data) || !isHex4(d.data[d.pos:d.pos+4]) {
					return nil, false, d.errorf("invalid \\u escape in string")
				}
				d.pos += 4
			default:
				return nil, false, d.errorf("invalid escape in string")
			}
		case c < 0x20:
			return nil, false, d.errorf("control character in string")
		default:
			r, n := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && n == 1 {
				return nil, false, d.errorf("invalid UTF-8 in string")
			}
			d.pos += n
		}
	}
	return nil, false, d.errorf("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if hexVal(c) < 0 {
			return false
		}
	}
	return true
}

func hexVal(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

func hex4(b []byte) rune {
	return hexVal(b[0])<<12 | hexVal(b[1])<<8 | hexVal(b[2])<<4 | hexVal(b[3])
}

// unescape decodes the escapes in raw, which scanString has already checked for syntax.
// Unlike encoding/json, which substitutes U+FFFD, it rejects unpaired surrogates: envelope
// strings are identifiers, and a lossy decode would make two different inputs equal.
func (d *decoder) unescape(raw []byte) ([]byte, error) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		c = raw[i+1]
		i += 2
		switch c {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(raw[i:])
			i += 4
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
					return nil, d.errorf("unpaired surrogate in string")
				}
				r2 := hex4(raw[i+2:])
				if r2 < 0xdc00 || r2 > 0xdfff {
					return nil, d.errorf("unpaired surrogate in string")
				}
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			out = utf8.AppendRune(out, r)
		default: // '"', '\\', '/'
			out = append(out, c)
		}
	}
	return out, nil
}

// skipValue consumes one JSON value of any type. depth is the nesting level of the value's
// container (0 for a top-level value).
func (d *decoder) skipValue(depth int) error {
	switch c := d.peek(); c {
	case '{':
		if depth >= d.maxDepth {
			return d.errorf("nested deeper than %d", d.maxDepth)
		}
		d.pos++
		for first := true; ; {
			_, ok, err := d.nextMember(&first, false)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if err := d.skipValue(depth + 1); err != nil {
				return err
			}
		}
	case '[':
		if depth >= d.maxDepth {
			return d.errorf("nested deeper than %d", d.maxDepth)
		}
		d.pos++
		d.skipSpace()
		if d.peek() == ']' {
			d.pos++
			return nil
		}
		for {
			if err := d.skipValue(depth + 1); err != nil {
				return err
			}
			d.skipSpace()
			switch d.peek() {
			case ',':
				d.pos++
				d.skipSpace()
			case ']':
				d.pos++
				return nil
			default:
				return d.unexpected("',' or ']'")
			}
		}
	case '"':
		_, _, err := d.scanString()
		return err
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			return d.number()
		}
		return d.unexpected("a JSON value")
	}
}

func (d *decoder) literal(lit string) error {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		return d.errorf("invalid literal, want %s", lit)
	}
	d.pos += len(lit)
	return nil
}

// number consumes a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() error {
	if d.peek() == '-' {
		d.pos++
	}
	switch c := d.peek(); {
	case c == '0':
		d.pos++
	case '1' <= c && c <= '9':
		d.digits()
	default:
		return d.unexpected("a digit")
	}
	if d.peek() == '.' {
		d.pos++
		if !d.digits() {
			return d.unexpected("a digit after '.'")
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.pos++
		if c := d.peek(); c == '+' || c == '-' {
			d.pos++
		}
		if !d.digits() {
			return d.unexpected("a digit in the exponent")
		}
	}
	return nil
}

// digits consumes [0-9]* and reports whether it consumed any.
func (d *decoder) digits() bool {
	start := d.pos
	for d.pos < len(d.data) && '0' <= d.data[d.pos] && d.data[d.pos] <= '9' {
		d.pos++
	}
	return d.pos > start
}

// appendCompact appends the JSON text v, which is known to be valid, without insignificant
// whitespace.
func appendCompact(dst, v []byte) []byte {
	inString := false
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped byte cannot end the string
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ' ', '\t', '\n', '\r':
			dst = append(dst, v[start:i]...)
			start = i + 1
		}
	}
	return append(dst, v[start:]...)
}

// appendQuoted appends s as a JSON string. It escapes only what JSON requires (quote,
// backslash, control characters), plus invalid UTF-8 as U+FFFD, so its output is always
// accepted by the decoder.
func appendQuoted(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || n != 1 {
				i += n
				continue
			}
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				dst = append(dst, `\ufffd`...)
			}
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
