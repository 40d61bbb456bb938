// Package expand is Kubernetes' $(VAR) expansion of command, args and env values, shared by
// Edged's container environment and its exec probes.
package expand

import "strings"

// Expand is Kubernetes' $(VAR) expansion: $(NAME) becomes lookup(NAME) when it is
// defined and stays as written otherwise; $$ is an escaped $; any other $ is literal.
func Expand(input string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	checkpoint := 0
	for cursor := 0; cursor < len(input); cursor++ {
		if input[cursor] != '$' || cursor+1 >= len(input) {
			continue
		}
		b.WriteString(input[checkpoint:cursor])
		read, isVar, advance := readVariableName(input[cursor+1:])
		if isVar {
			if v, ok := lookup(read); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + read + ")")
			}
		} else {
			b.WriteString(read)
		}
		cursor += advance
		checkpoint = cursor + 1
	}
	return b.String() + input[checkpoint:]
}

// readVariableName reads what follows a '$': the name of a $(NAME) reference, an escaped
// '$', or the literal text to copy; advance is how many bytes it consumed.
func readVariableName(input string) (read string, isVar bool, advance int) {
	switch input[0] {
	case '$':
		return "$", false, 1
	case '(':
		for i := 1; i < len(input); i++ {
			if input[i] == ')' {
				return input[1:i], true, i + 1
			}
		}
		return "$(", false, 1
	default:
		return "$" + input[:1], false, 1
	}
}
