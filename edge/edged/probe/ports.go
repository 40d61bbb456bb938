package probe

import (
	"fmt"
	"github.com/skerry-io/skerry/edge/edged/expand"
	"strconv"

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

// expandVars replaces $(VAR) references in s with vars, as the kubelet does.
func expandVars(s string, vars map[string]string) string {
	return expand.Expand(s, func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	})
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
		out[i] = expandVars(s, vars)
	}
	return out
}
