package volumes

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/skerry-io/skerry/edge/edged"
)

func envOf(t *testing.T, m *Manager, pod *corev1.Pod, c *corev1.Container) ([]string, map[string]string) {
	t.Helper()
	kvs, err := m.Resolve(context.Background(), pod, c, testFacts)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	vals := map[string]string{}
	for _, kv := range kvs {
		order = append(order, kv.Key)
		vals[kv.Key] = string(kv.Value)
	}
	return order, vals
}

func TestResolvePrecedenceAndOrder(t *testing.T) {
	objs := newFake()
	objs.setCM("cfg", map[string]string{"A": "cm-a", "B": "cm-b", "1BAD": "x", "has=eq": "x"}, nil)
	objs.setSecret("sec", map[string][]byte{"B": []byte("sec-b"), "C": []byte("sec-c")})
	m, _ := newManager(t, objs)
	pod := testPod()
	c := &pod.Spec.Containers[0]
	c.EnvFrom = []corev1.EnvFromSource{
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
		{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
		{Prefix: "P_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: ptr.To(true)}},
		{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: ptr.To(true)}},
	}
	c.Env = []corev1.EnvVar{
		{Name: "A", Value: "env-a"},
		{Name: "D", Value: "$(A)-$(C)"},
		{Name: "EMPTY"},
	}
	order, vals := envOf(t, m, pod, c)
	want := map[string]string{"A": "env-a", "B": "sec-b", "C": "sec-c", "1BAD": "x", "P_A": "cm-a", "P_B": "cm-b", "P_1BAD": "x", "D": "env-a-sec-c", "EMPTY": ""}
	for k, w := range want {
		if vals[k] != w {
			t.Errorf("%s = %q, want %q", k, vals[k], w)
		}
	}
	if _, ok := vals["has=eq"]; ok {
		t.Error("invalid name not skipped")
	}
	if len(vals) != len(want) {
		t.Errorf("env %v", vals)
	}
	if got := strings.Join(order, ","); got != "1BAD,A,B,C,P_1BAD,P_A,P_B,D,EMPTY" {
		t.Errorf("order %s", got)
	}
}

func TestResolveValueFrom(t *testing.T) {
	objs := newFake()
	objs.setCM("cfg", map[string]string{"k": "cm-v"}, nil)
	objs.setSecret("sec", map[string][]byte{"k": []byte("sec-v")})
	m, _ := newManager(t, objs)
	pod := testPod()
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: "side", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}})
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	res := func(name, r, ctr, div string) corev1.EnvVar {
		s := &corev1.ResourceFieldSelector{Resource: r, ContainerName: ctr}
		if div != "" {
			s.Divisor = resource.MustParse(div)
		}
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: s}}
	}
	c := &pod.Spec.Containers[0]
	c.Env = []corev1.EnvVar{
		{Name: "CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "k"}}},
		{Name: "SEC", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "k"}}},
		{Name: "OPT_CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "nokey", Optional: ptr.To(true)}}},
		{Name: "OPT_SEC", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k", Optional: ptr.To(true)}}},
		field("NAME", "metadata.name"), field("NS", "metadata.namespace"), field("UID", "metadata.uid"),
		field("APP", "metadata.labels['app']"), field("NOTE", "metadata.annotations['note']"), field("NOLABEL", "metadata.labels['none']"),
		field("NODE", "spec.nodeName"), field("SA", "spec.serviceAccountName"),
		field("HOSTIP", "status.hostIP"), field("HOSTIPS", "status.hostIPs"), field("PODIP", "status.podIP"), field("PODIPS", "status.podIPs"),
		res("CPU_M", "limits.cpu", "", "1m"), res("CPU", "limits.cpu", "", ""), res("CPU_REQ", "requests.cpu", "", "1m"),
		res("MEM_MI", "limits.memory", "", "1Mi"), res("MEM_REQ", "requests.memory", "", ""),
		res("SIDE_MEM", "limits.memory", "side", "1Mi"), res("SIDE_CPU", "limits.cpu", "side", ""),
		{Name: "LITERAL", Value: "$(NAME).$(NS)"},
	}
	_, vals := envOf(t, m, pod, c)
	want := map[string]string{
		"CM": "cm-v", "SEC": "sec-v", "OPT_CM": "", "OPT_SEC": "",
		"NAME": "web", "NS": "ns", "UID": "uid-1", "APP": "web", "NOTE": "x\ny", "NOLABEL": "",
		"NODE": "node-1", "SA": "sa", "HOSTIP": "10.0.0.1", "HOSTIPS": "10.0.0.1", "PODIP": "10.88.0.5", "PODIPS": "10.88.0.5,fd00::5",
		"CPU_M": "500", "CPU": "1", "CPU_REQ": "250", "MEM_MI": "64", "MEM_REQ": "33554432",
		"SIDE_MEM": "1024", "SIDE_CPU": "4", "LITERAL": "web.ns",
	}
	for k, w := range want {
		if vals[k] != w {
			t.Errorf("%s = %q, want %q", k, vals[k], w)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	objs := newFake()
	objs.setCM("cfg", map[string]string{"k": "v"}, nil)
	m, _ := newManager(t, objs)
	for _, tc := range []struct {
		name    string
		c       corev1.Container
		wantErr error
		names   string
	}{
		{"envFrom configmap", corev1.Container{EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}}}}, edged.ErrNotReady, "gone"},
		{"envFrom secret", corev1.Container{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}}}}, edged.ErrNotReady, "gone"},
		{"configMapKeyRef object", corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k"}}}}}, edged.ErrNotReady, "gone"},
		{"configMapKeyRef key", corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "nokey"}}}}}, edged.ErrNotReady, "nokey"},
		{"secretKeyRef", corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k"}}}}}, edged.ErrNotReady, "gone"},
		{"fieldRef", corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.schedulerName"}}}}}, edged.ErrUnsupported, "spec.schedulerName"},
		{"resourceFieldRef", corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.gpu"}}}}}, edged.ErrUnsupported, "limits.gpu"},
		{"fileKeyRef", corev1.Container{Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{}}}}}, edged.ErrUnsupported, "fileKeyRef"},
	} {
		pod := testPod()
		tc.c.Name = "c"
		_, err := m.Resolve(context.Background(), pod, &tc.c, testFacts)
		if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.names) {
			t.Errorf("%s: got %v, want %v naming %s", tc.name, err, tc.wantErr, tc.names)
		}
	}
}
