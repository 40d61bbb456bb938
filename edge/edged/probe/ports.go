package probe

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skerry-io/skerry/edge/edged"
)

// resolvePort turns a handler's port into a number as the kubelet does: a number, or a
// container port name, or (last resort) a name that parses as a number.
func resolvePort(param intstr.IntOrString, c *corev1.Container) (int, error) {
	port := -1
	switch param.Type {
	case intstr.Int:
		port = param.IntValue()
	case intstr.String:
		p, ok := portByName(c, param.StrVal)
		if !ok {
			n, err := strconv.Atoi(param.StrVal)
			if err != nil {
				return -1, fmt.Errorf("port %q not found in container %q: %w", param.StrVal, c.Name, err)
			}
			p = n
		}
		port = p
	default:
		return -1, fmt.Errorf("port has no kind: %+v", param)
	}
	if port > 0 && port < 65536 {
		return port, nil
	}
	return port, fmt.Errorf("invalid port number: %d", port)
}

func portByName(c *corev1.Container, name string) (int, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return int(p.ContainerPort), true
		}
	}
	return 0, false
}

// podHost is the address handlers without a host use: the pod IP as the kubelet's status
// has it (for hostNetwork pods that is the node's IP).
func podHost(pod *corev1.Pod, facts edged.Facts) (string, error) {
	switch {
	case facts.PodIP != "":
		return facts.PodIP, nil
	case len(facts.PodIPs) > 0 && facts.PodIPs[0] != "":
		return facts.PodIPs[0], nil
	case pod.Spec.HostNetwork && facts.HostIP != "":
		return facts.HostIP, nil
	}
	return "", fmt.Errorf("pod has no IP yet: %w", edged.ErrNotReady)
}

// expand replaces $(VAR) references in s as the kubelet's expansion package does: "$$" is
// an escaped "$", an unknown or unterminated reference is left as written.
func expand(s string, vars map[string]string) string {
	var b strings.Builder
	checkpoint := 0
	for cursor := 0; cursor < len(s); cursor++ {
		if s[cursor] != '$' || cursor+1 >= len(s) {
			continue
		}
		b.WriteString(s[checkpoint:cursor])
		rest := s[cursor+1:]
		advance := 1
		switch rest[0] {
		case '$':
			b.WriteByte('$')
		case '(':
			end := strings.IndexByte(rest[1:], ')')
			if end < 0 {
				b.WriteString("$(")
				break
			}
			name := rest[1 : end+1]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			advance = end + 2
		default:
			b.WriteByte('$')
			b.WriteByte(rest[0])
		}
		cursor += advance
		checkpoint = cursor + 1
	}
	return b.String() + s[checkpoint:]
}

// probeCommand is an exec probe's command with $(VAR) references to the container's static
// env values expanded, as the kubelet does for probes (not for hooks); a variable set with
// valueFrom expands to "".
func probeCommand(cmd []string, env []corev1.EnvVar) []string {
	vars := make(map[string]string, len(env))
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	out := make([]string, len(cmd))
	for i, s := range cmd {
		out[i] = expand(s, vars)
	}
	return out
}
