// Package objects reads the objects a node's pods use (ConfigMaps, Secrets, tokens) from the
// edge store, for Edged's volumes, environment and image pull secrets.
package objects

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/skerry-io/skerry/edge/edged"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Store implements edged.Objects over the edge store.
type Store struct{ DB *store.DB }

var _ edged.Objects = Store{}

// ConfigMap returns the stored ConfigMap.
func (s Store) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, bool, error) {
	var cm corev1.ConfigMap
	ok, err := s.get(ctx, wire.Key{Namespace: namespace, Type: wire.TypeConfigMap, Name: name}, &cm)
	if !ok || err != nil {
		return nil, ok, err
	}
	return &cm, true, nil
}

// Secret returns the stored Secret.
func (s Store) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, bool, error) {
	var sec corev1.Secret
	ok, err := s.get(ctx, wire.Key{Namespace: namespace, Type: wire.TypeSecret, Name: name}, &sec)
	if !ok || err != nil {
		return nil, ok, err
	}
	return &sec, true, nil
}

// PodTokens returns the pod's token object.
func (s Store) PodTokens(ctx context.Context, namespace, pod string) (*edged.PodTokens, bool, error) {
	var t edged.PodTokens
	ok, err := s.get(ctx, wire.Key{Namespace: namespace, Type: wire.TypeServiceAccountToken, Name: pod}, &t)
	if !ok || err != nil {
		return nil, ok, err
	}
	return &t, true, nil
}

func (s Store) get(ctx context.Context, k wire.Key, into any) (bool, error) {
	o, ok, err := s.DB.Get(ctx, k)
	if err != nil || !ok {
		return false, err
	}
	if err := json.Unmarshal(o.Content, into); err != nil {
		return false, fmt.Errorf("objects: stored %s: %w", k, err)
	}
	return true, nil
}
