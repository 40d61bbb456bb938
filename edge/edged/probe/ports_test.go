package probe

import (
	"errors"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skerry-io/skerry/edge/edged"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "EMPTY": ""}
	for in, want := range map[string]string{
		"":           "",
		"plain":      "plain",
		"$(A)":       "a",
		"x$(A)y$(A)": "xaya",
		"$(EMPTY)":   "",
		"$(B)":       "$(B)",
		"$$(A)":      "$(A)",
		"$$$(A)":     "$a",
		"$(A":        "$(A",
		"a$":         "a$",
		"$x":         "$x",
		"$()":        "$()",
		"$(A)$":      "a$",
		"$(A)$(B)$$": "a$(B)$",
		"$(A$(A))":   "$(A$(A))",
		"${A}":       "${A}",
	} {
		if got := expandVars(in, vars); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResolvePort(t *testing.T) {
	c := &corev1.Container{Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "bad", ContainerPort: 0}, {Name: "80", ContainerPort: 9090}}}
	for _, tc := range []struct {
		in      intstr.IntOrString
		want    int
		wantErr bool
	}{
		{intstr.FromInt32(80), 80, false},
		{intstr.FromString("http"), 8080, false},
		{intstr.FromString("443"), 443, false},
		{intstr.FromString("80"), 9090, false}, // a name wins over a number, as in the kubelet
		{intstr.FromString("nope"), 0, true},
		{intstr.FromString("bad"), 0, true},
		{intstr.FromInt32(0), 0, true},
		{intstr.FromInt32(65536), 0, true},
		{intstr.FromString("-1"), 0, true},
		{intstr.IntOrString{Type: 7}, 0, true},
	} {
		got, err := resolvePort(tc.in, c)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("resolvePort(%v) = %d, %v", tc.in.String(), got, err)
		}
	}
}

func FuzzResolvePort(f *testing.F) {
	f.Add("http", int32(8080), "http")
	f.Add("", int32(0), "65535")
	f.Add("x", int32(70000), "x")
	f.Fuzz(func(t *testing.T, name string, containerPort int32, param string) {
		c := &corev1.Container{Ports: []corev1.ContainerPort{{Name: name, ContainerPort: containerPort}}}
		got, err := resolvePort(intstr.FromString(param), c)
		if err != nil {
			return
		}
		if got <= 0 || got >= 65536 {
			t.Fatalf("port %d accepted", got)
		}
		if param == name && got != int(containerPort) {
			t.Fatalf("name %q resolved to %d, want %d", name, got, containerPort)
		}
		if param != name {
			if n, err := strconv.Atoi(param); err != nil || n != got {
				t.Fatalf("%q resolved to %d", param, got)
			}
		}
	})
}

func TestPodHost(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	if h, _ := podHost(pod, edged.Facts{PodIP: "10.0.0.1", PodIPs: []string{"10.0.0.2"}}); h != "10.0.0.1" {
		t.Fatal(h)
	}
	if h, _ := podHost(pod, edged.Facts{PodIPs: []string{"fd00::1"}}); h != "fd00::1" {
		t.Fatal(h)
	}
	if _, err := podHost(pod, edged.Facts{HostIP: "192.168.1.1"}); !errors.Is(err, edged.ErrNotReady) {
		t.Fatal(err)
	}
	pod.Spec.HostNetwork = true
	if h, _ := podHost(pod, edged.Facts{HostIP: "192.168.1.1"}); h != "192.168.1.1" {
		t.Fatal(h)
	}
}
