package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skerry-io/skerry/pkg/wire"
)

// Pod status fields NodeRestriction forbids a kubelet to change through pods/status: they
// are the resource-claim controller's.
const (
	fieldResourceClaimStatuses       = "resourceClaimStatuses"
	fieldExtendedResourceClaimStatus = "extendedResourceClaimStatus"
)

// podStatus writes the edge's view of a pod's status. The uid in the patch makes the API server
// refuse it for a pod deleted and re-created under the same name (metadata.uid is immutable).
func (h *Handler) podStatus(ctx context.Context, node string, key wire.Key, content json.RawMessage) error {
	var in corev1.Pod
	if err := decode(content, "pod status", &in); err != nil {
		return err
	}
	if (in.Name != "" && in.Name != key.Name) || (in.Namespace != "" && in.Namespace != key.Namespace) {
		return fmt.Errorf("%w: status for pod %s/%s names pod %s/%s", ErrMalformed,
			key.Namespace, key.Name, clip(in.Namespace), clip(in.Name))
	}
	if in.UID == "" {
		return fmt.Errorf("%w: status for pod %s/%s has no metadata.uid", ErrMalformed, key.Namespace, key.Name)
	}
	uid, err := h.apiPodUID(node, key, in.UID)
	if err != nil {
		return err
	}
	st := in.Status
	st.ResourceClaimStatuses = nil
	st.ExtendedResourceClaimStatus = nil
	if h.unchangedMirrorStatus(key, uid, &st) {
		return nil
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": uid},
		"status":   st,
	})
	if err != nil {
		return fmt.Errorf("%w: status for pod %s/%s: %w", ErrMalformed, key.Namespace, key.Name, err)
	}
	if _, err := h.patchPodStatus(ctx, key, patch); err != nil {
		h.log.Warn("pod status update failed", "node", node, "namespace", key.Namespace, "pod", key.Name, "err", err)
		return err
	}
	h.log.Debug("pod status updated", "node", node, "namespace", key.Namespace, "pod", key.Name)
	return nil
}

// podPatch applies the edge's strategic merge patch to a pod's status subresource, held to
// what NodeRestriction lets a kubelet change there: status (not resource claims), and the uid
// as a precondition.
func (h *Handler) podPatch(ctx context.Context, node string, key wire.Key, content json.RawMessage) (json.RawMessage, error) {
	patch, err := decodeMap(content, "pod patch")
	if err != nil {
		return nil, err
	}
	uid, err := checkPodPatch(patch)
	if err != nil {
		return nil, err
	}
	if uid != "" {
		apiUID, err := h.apiPodUID(node, key, types.UID(uid))
		if err != nil {
			return nil, err
		}
		if apiUID != types.UID(uid) { // a static pod's status, for its mirror pod
			patch["metadata"] = map[string]any{"uid": string(apiUID)}
			if content, err = json.Marshal(patch); err != nil {
				return nil, fmt.Errorf("%w: pod patch: %w", ErrMalformed, err)
			}
		}
	} else {
		// No uid from the edge: pin the patch to the pod the authorizer saw bound to this
		// node, so a pod re-created under the same name elsewhere cannot be patched.
		p, ok := h.cfg.Objects.Pod(key.Namespace, key.Name)
		if !ok {
			return nil, fmt.Errorf("%w: pod %s/%s", ErrNotFound, key.Namespace, key.Name)
		}
		if p.Spec.NodeName != node {
			return nil, fmt.Errorf("%w: pod %s/%s is bound to %q", ErrRefused, key.Namespace, key.Name, p.Spec.NodeName)
		}
		patch["metadata"] = map[string]any{"uid": string(p.UID)}
		if content, err = json.Marshal(patch); err != nil {
			return nil, fmt.Errorf("%w: pod patch: %w", ErrMalformed, err)
		}
	}
	out, err := h.patchPodStatus(ctx, key, content)
	if err != nil {
		h.log.Warn("pod status patch failed", "node", node, "namespace", key.Namespace, "pod", key.Name, "err", err)
		return nil, err
	}
	h.log.Debug("pod status patched", "node", node, "namespace", key.Namespace, "pod", key.Name)
	return withKind(out, func() { out.APIVersion, out.Kind = "v1", "Pod" })
}

// checkPodPatch returns the patch's metadata.uid ("" if none) or why the patch is refused.
func checkPodPatch(patch map[string]any) (uid string, err error) {
	for k, v := range patch {
		switch k {
		case "status":
			st, ok := v.(map[string]any)
			if !ok {
				return "", fmt.Errorf("%w: pod patch: status must be an object", ErrMalformed)
			}
			for sk := range st {
				field := strings.TrimPrefix(sk, "$setElementOrder/")
				if field == fieldResourceClaimStatuses || field == fieldExtendedResourceClaimStatus {
					return "", fmt.Errorf("%w: an edge node may not change status.%s of a pod", ErrRefused, field)
				}
				if strings.HasPrefix(field, "$") { // $patch, $retainKeys: could drop the fields above
					return "", fmt.Errorf("%w: pod patch: directive %q not allowed in status", ErrRefused, clip(sk))
				}
			}
		case "metadata":
			md, ok := v.(map[string]any)
			if !ok {
				return "", fmt.Errorf("%w: pod patch: metadata must be an object", ErrMalformed)
			}
			for mk, mv := range md {
				if mk != "uid" {
					return "", fmt.Errorf("%w: a pod status patch may not change metadata.%s", ErrRefused, clip(mk))
				}
				s, ok := mv.(string)
				if !ok || s == "" {
					return "", fmt.Errorf("%w: pod patch: metadata.uid must be a non-empty string", ErrMalformed)
				}
				uid = s
			}
		default:
			return "", fmt.Errorf("%w: a pod status patch may change only status, not %s", ErrRefused, clip(k))
		}
	}
	return uid, nil
}

func recreated(key wire.Key, uid types.UID) error {
	return fmt.Errorf("pod %s/%s uid %s: %w", key.Namespace, key.Name, clip(string(uid)), ErrPodRecreated)
}

// patchPodStatus sends a strategic merge patch to pods/status and maps the answers that mean
// "this pod is gone" to plain errors the edge drops the message on.
func (h *Handler) patchPodStatus(ctx context.Context, key wire.Key, patch []byte) (*corev1.Pod, error) {
	var out *corev1.Pod
	err := h.call(ctx, "patch pod status", func(ctx context.Context) error {
		var err error
		out, err = h.client.CoreV1().Pods(key.Namespace).Patch(ctx, key.Name, types.StrategicMergePatchType,
			patch, metav1.PatchOptions{}, "status")
		return err
	})
	switch {
	case err == nil:
		return out, nil
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("pod %s/%s %w", key.Namespace, key.Name, ErrNotFound)
	case apierrors.IsConflict(err), apierrors.IsInvalid(err) && invalidUID(err):
		return nil, fmt.Errorf("pod %s/%s: %w (%w)", key.Namespace, key.Name, ErrPodRecreated, err)
	}
	return nil, fmt.Errorf("patch status of pod %s/%s: %w", key.Namespace, key.Name, err)
}

// invalidUID reports whether an Invalid error is about metadata.uid (immutable, so the patch's
// uid differs from the pod's).
func invalidUID(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	if d == nil {
		return strings.Contains(status.Status().Message, "metadata.uid")
	}
	for _, c := range d.Causes {
		if c.Field == "metadata.uid" {
			return true
		}
	}
	return false
}

// podDelete finishes a graceful deletion the edge has carried out: the kubelet's final delete,
// with grace period 0 and the uid as precondition so a re-created pod survives.
func (h *Handler) podDelete(ctx context.Context, node string, key wire.Key, content json.RawMessage) error {
	var in struct {
		Metadata struct {
			UID types.UID `json:"uid"`
		} `json:"metadata"`
	}
	if err := decode(content, "pod deletion", &in); err != nil {
		return err
	}
	if in.Metadata.UID == "" {
		return fmt.Errorf("%w: deletion of pod %s/%s has no metadata.uid", ErrMalformed, key.Namespace, key.Name)
	}
	uid, err := h.apiPodUID(node, key, in.Metadata.UID)
	if err != nil {
		return err
	}
	zero := int64(0)
	err = h.call(ctx, "delete pod", func(ctx context.Context) error {
		return h.client.CoreV1().Pods(key.Namespace).Delete(ctx, key.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &uid},
		})
	})
	switch {
	case err == nil:
		h.log.Info("pod deleted", "node", node, "namespace", key.Namespace, "pod", key.Name, "uid", string(uid))
		return nil
	case apierrors.IsNotFound(err):
		h.log.Debug("pod already gone", "node", node, "namespace", key.Namespace, "pod", key.Name)
		return nil
	case apierrors.IsConflict(err):
		err = fmt.Errorf("delete pod %s/%s: %w (%w)", key.Namespace, key.Name, ErrPodRecreated, err)
	default:
		err = fmt.Errorf("delete pod %s/%s: %w", key.Namespace, key.Name, err)
	}
	h.log.Warn("pod deletion failed", "node", node, "namespace", key.Namespace, "pod", key.Name, "err", err)
	return err
}
