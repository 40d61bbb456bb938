package volumes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

// defaultTokenExpiration is what the API server defaults a serviceAccountToken projection's
// expirationSeconds to.
const defaultTokenExpiration = 3600

func (m *Manager) configMapPayload(ctx context.Context, ns, name string, items []corev1.KeyToPath, defMode int32, opt bool) (map[string]fileProjection, error) {
	cm, found, err := m.objects.ConfigMap(ctx, ns, name)
	if err != nil {
		return nil, fmt.Errorf("configmap %s/%s: %w", ns, name, err)
	}
	if !found {
		if opt {
			return map[string]fileProjection{}, nil
		}
		return nil, fmt.Errorf("configmap %s/%s not found: %w", ns, name, edged.ErrNotReady)
	}
	lookup := func(key string) ([]byte, bool) {
		if s, ok := cm.Data[key]; ok {
			return []byte(s), true
		}
		b, ok := cm.BinaryData[key]
		return b, ok
	}
	var all []string
	for k := range cm.Data {
		all = append(all, k)
	}
	for k := range cm.BinaryData {
		all = append(all, k)
	}
	return makePayload("configmap "+ns+"/"+name, items, all, lookup, defMode, opt)
}

func (m *Manager) secretPayload(ctx context.Context, ns, name string, items []corev1.KeyToPath, defMode int32, opt bool) (map[string]fileProjection, error) {
	s, found, err := m.objects.Secret(ctx, ns, name)
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", ns, name, err)
	}
	if !found {
		if opt {
			return map[string]fileProjection{}, nil
		}
		return nil, fmt.Errorf("secret %s/%s not found: %w", ns, name, edged.ErrNotReady)
	}
	var all []string
	for k := range s.Data {
		all = append(all, k)
	}
	lookup := func(key string) ([]byte, bool) {
		b, ok := s.Data[key]
		return b, ok
	}
	return makePayload("secret "+ns+"/"+name, items, all, lookup, defMode, opt)
}

// makePayload is the kubelet's MakePayload: every key when there are no items, else the
// items, a missing key skipped if optional and an error otherwise.
func makePayload(what string, items []corev1.KeyToPath, keys []string, lookup func(string) ([]byte, bool), defMode int32, opt bool) (map[string]fileProjection, error) {
	payload := make(map[string]fileProjection)
	if len(items) == 0 {
		for _, k := range keys {
			data, _ := lookup(k)
			payload[k] = fileProjection{Data: data, Mode: defMode}
		}
		return payload, nil
	}
	for _, it := range items {
		data, ok := lookup(it.Key)
		if !ok {
			if opt {
				continue
			}
			return nil, fmt.Errorf("%s has no key %q: %w", what, it.Key, edged.ErrNotReady)
		}
		mode := defMode
		if it.Mode != nil {
			mode = *it.Mode
		}
		payload[it.Path] = fileProjection{Data: data, Mode: mode}
	}
	return payload, nil
}

// downwardPayload is the kubelet's downward API CollectData.
func (m *Manager) downwardPayload(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defMode int32, facts edged.Facts) (map[string]fileProjection, error) {
	payload := make(map[string]fileProjection, len(items))
	var errs []error
	for _, it := range items {
		mode := defMode
		if it.Mode != nil {
			mode = *it.Mode
		}
		var val string
		var err error
		switch {
		case it.FieldRef != nil:
			val, err = fieldValue(pod, it.FieldRef.FieldPath, facts)
		case it.ResourceFieldRef != nil:
			c := findContainer(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				err = fmt.Errorf("resourceFieldRef: container %q not found in the pod", it.ResourceFieldRef.ContainerName)
			} else {
				val, err = m.resourceValue(it.ResourceFieldRef, c)
			}
		default:
			err = errors.New("neither fieldRef nor resourceFieldRef is set")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("items path %q: %w", it.Path, err))
			continue
		}
		payload[it.Path] = fileProjection{Data: []byte(val), Mode: mode}
	}
	return payload, errors.Join(errs...)
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// projectedPayload is the kubelet's projected collectData: sources merged in order.
func (m *Manager) projectedPayload(ctx context.Context, pod *corev1.Pod, p *corev1.ProjectedVolumeSource, facts edged.Facts) (map[string]fileProjection, error) {
	defMode := modeOr(p.DefaultMode)
	payload := make(map[string]fileProjection)
	var fsGroup *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	fsUser := fsUserFrom(pod)
	var tokens *edged.PodTokens
	for j, src := range p.Sources {
		var part map[string]fileProjection
		var err error
		switch {
		case src.ConfigMap != nil:
			part, err = m.configMapPayload(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, defMode, optional(src.ConfigMap.Optional))
		case src.Secret != nil:
			part, err = m.secretPayload(ctx, pod.Namespace, src.Secret.Name, src.Secret.Items, defMode, optional(src.Secret.Optional))
		case src.DownwardAPI != nil:
			part, err = m.downwardPayload(pod, src.DownwardAPI.Items, defMode, facts)
		case src.ServiceAccountToken != nil:
			if tokens == nil {
				tokens, err = m.podTokens(ctx, pod)
				if err != nil {
					return nil, fmt.Errorf("sources[%d].serviceAccountToken: %w", j, err)
				}
			}
			var tok string
			tok, err = pickToken(tokens, src.ServiceAccountToken)
			if err == nil {
				// The kubelet's rule: the token is private to the pod's user when the pod
				// sets one (runAsUser or fsGroup).
				mode := defMode
				if fsUser != nil || fsGroup != nil {
					mode = 0o600
				}
				part = map[string]fileProjection{src.ServiceAccountToken.Path: {Data: []byte(tok), Mode: mode, FsUser: fsUser}}
			}
		case src.ClusterTrustBundle != nil:
			err = fmt.Errorf("clusterTrustBundle: %w", edged.ErrUnsupported)
		case src.PodCertificate != nil:
			err = fmt.Errorf("podCertificate: %w", edged.ErrUnsupported)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sources[%d]: %w", j, err)
		}
		for k, v := range part {
			payload[k] = v
		}
	}
	return payload, nil
}

func (m *Manager) podTokens(ctx context.Context, pod *corev1.Pod) (*edged.PodTokens, error) {
	t, found, err := m.objects.PodTokens(ctx, pod.Namespace, pod.Name)
	if err != nil {
		return nil, err
	}
	if !found || t == nil {
		return nil, fmt.Errorf("no service account tokens for pod %s/%s yet: %w", pod.Namespace, pod.Name, edged.ErrNotReady)
	}
	// Tokens of an earlier pod of the same name are bound to it: not ours.
	var meta struct {
		UID string `json:"uid"`
	}
	if len(t.Metadata) > 0 && json.Unmarshal(t.Metadata, &meta) == nil && meta.UID != "" && meta.UID != string(pod.UID) {
		return nil, fmt.Errorf("service account tokens for pod %s/%s are for uid %s, not %s: %w", pod.Namespace, pod.Name, meta.UID, pod.UID, edged.ErrNotReady)
	}
	return t, nil
}

// pickToken finds the token issued for the projection's (audience, expirationSeconds).
func pickToken(t *edged.PodTokens, p *corev1.ServiceAccountTokenProjection) (string, error) {
	exp := int64(defaultTokenExpiration)
	if p.ExpirationSeconds != nil {
		exp = *p.ExpirationSeconds
	}
	for _, tok := range t.Tokens {
		if tok.Audience == p.Audience && tok.ExpirationSeconds == exp {
			return tok.Token, nil
		}
	}
	return "", fmt.Errorf("no token for audience %q and expirationSeconds %d yet: %w", p.Audience, exp, edged.ErrNotReady)
}

// fsUserFrom is the kubelet's FsUserFrom: the user every container runs as, if they all
// set the same one.
func fsUserFrom(pod *corev1.Pod) *int64 {
	var podUser *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		podUser = sc.RunAsUser
	}
	var user *int64
	first := true
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			u := podUser
			if sc := list[i].SecurityContext; sc != nil && sc.RunAsUser != nil {
				u = sc.RunAsUser
			}
			if u == nil {
				return nil
			}
			if first {
				user, first = u, false
			} else if *user != *u {
				return nil
			}
		}
	}
	return user
}
