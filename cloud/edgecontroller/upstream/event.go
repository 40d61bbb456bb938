package upstream

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skerry-io/skerry/pkg/wire"
)

// event records an event about the node or one of its pods (the authorizer checked which).
// Like the kubelet's recorder, a repeat of an existing event updates its count, last timestamp
// and message instead of creating another.
func (h *Handler) event(ctx context.Context, node string, key wire.Key, content json.RawMessage) error {
	var in corev1.Event
	if err := decode(content, "event", &in); err != nil {
		return err
	}
	ev := in.DeepCopy()
	// The resource string names the event; nothing else of the edge's metadata is trusted.
	ev.ObjectMeta = metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}
	events := h.client.CoreV1().Events(key.Namespace)
	err := h.call(ctx, "create event", func(ctx context.Context) error {
		_, err := events.Create(ctx, ev, metav1.CreateOptions{})
		return err
	})
	if apierrors.IsAlreadyExists(err) {
		// Only a repeat of the same event may update it: the authorizer checked the
		// involvedObject of what the edge sent, not of the event already stored.
		var stored *corev1.Event
		if err = h.call(ctx, "get event", func(ctx context.Context) error {
			var gerr error
			stored, gerr = events.Get(ctx, key.Name, metav1.GetOptions{})
			return gerr
		}); err != nil {
			return fmt.Errorf("record event %s/%s: %w", key.Namespace, key.Name, err)
		}
		if !sameObject(stored.InvolvedObject, in.InvolvedObject) {
			return fmt.Errorf("%w: event %s/%s exists and is about another object (%s %s)", ErrRefused,
				key.Namespace, key.Name, clip(stored.InvolvedObject.Kind), clip(stored.InvolvedObject.Name))
		}
		last := in.LastTimestamp
		if last.IsZero() {
			last = metav1.NewTime(h.clock.Now())
		}
		var patch []byte
		patch, err = json.Marshal(map[string]any{"count": in.Count, "lastTimestamp": last, "message": in.Message})
		if err != nil {
			return fmt.Errorf("%w: event %s: %w", ErrMalformed, key, err)
		}
		err = h.call(ctx, "patch event", func(ctx context.Context) error {
			_, err := events.Patch(ctx, key.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		})
	}
	if err != nil {
		h.log.Warn("event not recorded", "node", node, "namespace", key.Namespace, "event", key.Name, "err", err)
		return fmt.Errorf("record event %s/%s: %w", key.Namespace, key.Name, err)
	}
	h.log.Debug("event recorded", "node", node, "namespace", key.Namespace, "event", key.Name,
		"reason", clip(in.Reason), "object", clip(in.InvolvedObject.Kind+"/"+in.InvolvedObject.Name))
	return nil
}

// sameObject compares the identity fields of two involvedObject references.
func sameObject(a, b corev1.ObjectReference) bool {
	return a.Kind == b.Kind && a.Namespace == b.Namespace && a.Name == b.Name && a.UID == b.UID
}
