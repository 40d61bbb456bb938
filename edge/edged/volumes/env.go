package volumes

import (
	"context"
	"fmt"
	"github.com/skerry-io/skerry/edge/edged/expand"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

// Resolve implements edged.Env as the kubelet's makeEnvironmentVariables does: envFrom
// sources in order (later ones override earlier ones; keys that are not valid variable
// names are skipped), then env in order, a literal value expanding $(VAR) references to
// variables defined before it. Unlike the kubelet, service links ({SVC}_SERVICE_HOST...) are
// not added. The result is ordered by first definition (envFrom keys sorted per source).
func (m *Manager) Resolve(ctx context.Context, pod *corev1.Pod, c *corev1.Container, facts edged.Facts) ([]*runtimeapi.KeyValue, error) {
	var order []string
	vals := make(map[string]string)
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}

	for i, ef := range c.EnvFrom {
		var data map[string]string
		switch {
		case ef.ConfigMapRef != nil:
			cm, found, err := m.objects.ConfigMap(ctx, pod.Namespace, ef.ConfigMapRef.Name)
			if err != nil {
				return nil, fmt.Errorf("envFrom[%d].configMapRef %s: %w", i, ef.ConfigMapRef.Name, err)
			}
			if !found {
				if optional(ef.ConfigMapRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("container %s: envFrom[%d]: configmap %s/%s not found: %w", c.Name, i, pod.Namespace, ef.ConfigMapRef.Name, edged.ErrNotReady)
			}
			data = cm.Data
		case ef.SecretRef != nil:
			s, found, err := m.objects.Secret(ctx, pod.Namespace, ef.SecretRef.Name)
			if err != nil {
				return nil, fmt.Errorf("envFrom[%d].secretRef %s: %w", i, ef.SecretRef.Name, err)
			}
			if !found {
				if optional(ef.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("container %s: envFrom[%d]: secret %s/%s not found: %w", c.Name, i, pod.Namespace, ef.SecretRef.Name, edged.ErrNotReady)
			}
			data = make(map[string]string, len(s.Data))
			for k, v := range s.Data {
				data[k] = string(v)
			}
		default:
			continue
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var invalid []string
		for _, k := range keys {
			name := ef.Prefix + k
			if len(validation.IsRelaxedEnvVarName(name)) > 0 {
				invalid = append(invalid, name)
				continue
			}
			set(name, data[k])
		}
		if len(invalid) > 0 {
			m.log.Warn("envFrom keys skipped: not valid environment variable names", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "keys", invalid)
		}
	}

	for i := range c.Env {
		e := &c.Env[i]
		var v string
		switch {
		case e.Value != "":
			v = expand.Expand(e.Value, func(name string) (string, bool) {
				val, ok := vals[name]
				return val, ok
			})
		case e.ValueFrom != nil:
			var err error
			v, err = m.valueFrom(ctx, pod, c, e.ValueFrom, facts)
			if err != nil {
				return nil, fmt.Errorf("container %s: env[%d] (%s): %w", c.Name, i, e.Name, err)
			}
		}
		set(e.Name, v)
	}

	out := make([]*runtimeapi.KeyValue, 0, len(order))
	for _, k := range order {
		out = append(out, &runtimeapi.KeyValue{Key: k, Value: []byte(vals[k])})
	}
	return out, nil
}

func (m *Manager) valueFrom(ctx context.Context, pod *corev1.Pod, c *corev1.Container, vf *corev1.EnvVarSource, facts edged.Facts) (string, error) {
	switch {
	case vf.FieldRef != nil:
		return fieldValue(pod, vf.FieldRef.FieldPath, facts)
	case vf.ResourceFieldRef != nil:
		target := c
		if n := vf.ResourceFieldRef.ContainerName; n != "" && n != c.Name {
			if target = findContainer(pod, n); target == nil {
				return "", fmt.Errorf("resourceFieldRef: container %q not found in the pod", n)
			}
		}
		return m.resourceValue(vf.ResourceFieldRef, target)
	case vf.ConfigMapKeyRef != nil:
		r := vf.ConfigMapKeyRef
		cm, found, err := m.objects.ConfigMap(ctx, pod.Namespace, r.Name)
		if err != nil {
			return "", fmt.Errorf("configmap %s/%s: %w", pod.Namespace, r.Name, err)
		}
		if !found {
			if optional(r.Optional) {
				return "", nil
			}
			return "", fmt.Errorf("configmap %s/%s not found: %w", pod.Namespace, r.Name, edged.ErrNotReady)
		}
		if v, ok := cm.Data[r.Key]; ok {
			return v, nil
		}
		if optional(r.Optional) {
			return "", nil
		}
		return "", fmt.Errorf("configmap %s/%s has no key %q: %w", pod.Namespace, r.Name, r.Key, edged.ErrNotReady)
	case vf.SecretKeyRef != nil:
		r := vf.SecretKeyRef
		s, found, err := m.objects.Secret(ctx, pod.Namespace, r.Name)
		if err != nil {
			return "", fmt.Errorf("secret %s/%s: %w", pod.Namespace, r.Name, err)
		}
		if !found {
			if optional(r.Optional) {
				return "", nil
			}
			return "", fmt.Errorf("secret %s/%s not found: %w", pod.Namespace, r.Name, edged.ErrNotReady)
		}
		if v, ok := s.Data[r.Key]; ok {
			return string(v), nil
		}
		if optional(r.Optional) {
			return "", nil
		}
		return "", fmt.Errorf("secret %s/%s has no key %q: %w", pod.Namespace, r.Name, r.Key, edged.ErrNotReady)
	case vf.FileKeyRef != nil:
		return "", fmt.Errorf("valueFrom.fileKeyRef: %w", edged.ErrUnsupported)
	}
	return "", fmt.Errorf("valueFrom: no source set: %w", edged.ErrUnsupported)
}
