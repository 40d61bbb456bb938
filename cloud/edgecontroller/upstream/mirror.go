package upstream

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skerry-io/skerry/cloud/edgecontroller/authz"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Mirror pods. An edge runs static pods from its manifest directory under a local uid, the
// pod's config hash, and asks for a mirror pod in the API carrying that hash as the
// kubernetes.io/config.mirror annotation. The edge never learns the mirror pod's API uid, so
// its status writes and deletions name the static pod's uid; the handler maps it to the
// mirror pod whose annotation matches (apiPodUID), which keeps the uid precondition: a write
// for an older incarnation of the static pod matches no mirror pod and is refused.

// isMirrorOf reports whether p is node's mirror pod of the static pod with config hash uid.
func isMirrorOf(p *corev1.Pod, node string, uid types.UID) bool {
	h, ok := p.Annotations[authz.MirrorAnnotation]
	return ok && uid != "" && h == string(uid) && p.Spec.NodeName == node
}

// apiPodUID returns the uid the API knows the pod by, for a write the edge made with uid:
// uid itself for a pod the cloud sent, the mirror pod's for a static pod. The lister's view
// is used; a pod the lister does not know keeps uid, and the API server's uid check decides.
func (h *Handler) apiPodUID(node string, key wire.Key, uid types.UID) (types.UID, error) {
	p, ok := h.objs.Pod(key.Namespace, key.Name)
	switch {
	case !ok || p == nil || p.UID == "" || p.UID == uid:
		return uid, nil
	case isMirrorOf(p, node, uid):
		return p.UID, nil
	}
	return "", recreated(key, uid)
}

// unchangedMirrorStatus reports whether the pod is a mirror pod whose status already is st:
// the edge sends a static pod's status again periodically (so a re-created mirror pod gets
// it), and an unchanged one needs no API call.
func (h *Handler) unchangedMirrorStatus(key wire.Key, uid types.UID, st *corev1.PodStatus) bool {
	p, ok := h.objs.Pod(key.Namespace, key.Name)
	if !ok || p == nil || p.UID != uid {
		return false
	}
	if _, mirror := p.Annotations[authz.MirrorAnnotation]; !mirror {
		return false
	}
	return apiequality.Semantic.DeepEqual(&p.Status, st)
}

// mirrorPod creates the node's mirror pod (the authorizer checked it is one, bound to the
// node and referencing no API object). An up-to-date mirror pod is left alone; one of an
// older incarnation of the static pod, or one a user is deleting, is deleted and created
// again, as the kubelet does.
func (h *Handler) mirrorPod(ctx context.Context, node string, key wire.Key, content json.RawMessage) error {
	var pod corev1.Pod
	if err := decode(content, "mirror pod", &pod); err != nil {
		return err
	}
	hash := pod.Annotations[authz.MirrorAnnotation]
	n, ok := h.objs.Node(node)
	if !ok {
		return fmt.Errorf("node %q %w", node, ErrNotFound)
	}
	for i := range pod.OwnerReferences {
		ref := &pod.OwnerReferences[i]
		if ref.UID == "" {
			ref.UID = n.UID // the edge may not know its Node's uid yet
		}
		if ref.UID != n.UID {
			return fmt.Errorf("%w: the owner reference names Node %q with uid %s, not %s", ErrRefused, node, clip(string(ref.UID)), n.UID)
		}
	}
	// Only what a client may set: the API server fills in the rest.
	pod.ObjectMeta = metav1.ObjectMeta{
		Name: key.Name, Namespace: key.Namespace, Labels: pod.Labels, Annotations: pod.Annotations,
		OwnerReferences: pod.OwnerReferences,
	}
	pod.Status = corev1.PodStatus{}

	if p, ok := h.objs.Pod(key.Namespace, key.Name); ok && p != nil {
		if done, err := h.replaceMirror(ctx, node, key, p, hash); done || err != nil {
			return err
		}
	}
	for range 2 {
		err := h.call(ctx, "create mirror pod", func(ctx context.Context) error {
			_, err := h.client.CoreV1().Pods(key.Namespace).Create(ctx, pod.DeepCopy(), metav1.CreateOptions{})
			return err
		})
		if err == nil {
			h.log.Info("mirror pod created", "node", node, "namespace", key.Namespace, "pod", key.Name)
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			h.log.Warn("mirror pod creation failed", "node", node, "namespace", key.Namespace, "pod", key.Name, "err", err)
			return fmt.Errorf("create mirror pod %s/%s: %w", key.Namespace, key.Name, err)
		}
		var cur *corev1.Pod
		err = h.call(ctx, "get pod", func(ctx context.Context) error {
			var err error
			cur, err = h.client.CoreV1().Pods(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
			return err
		})
		switch {
		case apierrors.IsNotFound(err):
			continue // gone meanwhile
		case err != nil:
			return fmt.Errorf("get pod %s/%s: %w", key.Namespace, key.Name, err)
		}
		if done, err := h.replaceMirror(ctx, node, key, cur, hash); done || err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: mirror pod %s/%s: created and deleted concurrently; try again", ErrRefused, key.Namespace, key.Name)
}

// replaceMirror looks at the pod p holding the mirror pod's name: done when p is the wanted
// mirror pod already; an error when p is not this node's mirror pod; otherwise p is deleted
// (an older incarnation, or one being deleted) and the caller creates the new one.
func (h *Handler) replaceMirror(ctx context.Context, node string, key wire.Key, p *corev1.Pod, hash string) (done bool, err error) {
	old, mirror := p.Annotations[authz.MirrorAnnotation]
	if !mirror || p.Spec.NodeName != node {
		return true, fmt.Errorf("%w: pod %s/%s exists and is not a mirror pod of node %q", ErrRefused, key.Namespace, key.Name, node)
	}
	if old == hash && p.DeletionTimestamp == nil {
		h.log.Debug("mirror pod up to date", "node", node, "namespace", key.Namespace, "pod", key.Name)
		return true, nil
	}
	uid, zero := p.UID, int64(0)
	err = h.call(ctx, "delete mirror pod", func(ctx context.Context) error {
		return h.client.CoreV1().Pods(key.Namespace).Delete(ctx, key.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid},
		})
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return true, fmt.Errorf("delete outdated mirror pod %s/%s: %w", key.Namespace, key.Name, err)
	}
	h.log.Info("outdated mirror pod deleted", "node", node, "namespace", key.Namespace, "pod", key.Name, "uid", string(uid))
	return false, nil
}
