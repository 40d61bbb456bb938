package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

// register creates the edge's Node, or, when it exists and is an edge node, updates its status.
func (h *Handler) register(ctx context.Context, node string, content json.RawMessage) (json.RawMessage, error) {
	var in corev1.Node
	if err := decode(content, "node registration", &in); err != nil {
		return nil, err
	}
	if in.Name != "" && in.Name != node {
		return nil, fmt.Errorf("%w: registration of node %q names node %q", ErrMalformed, node, clip(in.Name))
	}
	labels, dropped := h.registrationLabels(in.Labels)
	if len(dropped) > 0 {
		h.log.Warn("node registration: dropped labels an edge node may not set", "node", node, "labels", dropped)
	}
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node, Labels: labels, Annotations: in.Annotations},
		Spec:       corev1.NodeSpec{Taints: in.Spec.Taints},
	}
	var created *corev1.Node
	err := h.call(ctx, "create node", func(ctx context.Context) error {
		var err error
		created, err = h.client.CoreV1().Nodes().Create(ctx, want.DeepCopy(), metav1.CreateOptions{})
		return err
	})
	var out *corev1.Node
	switch {
	case err == nil:
		h.log.Info("node registered", "node", node, "uid", string(created.UID))
		// Create drops status; set it on the object just created.
		out, err = h.updateNodeStatus(ctx, node, &in.Status, created)
	case apierrors.IsAlreadyExists(err):
		h.log.Info("node registration: node exists, updating its status", "node", node)
		out, err = h.updateNodeStatus(ctx, node, &in.Status, nil)
	default:
		err = fmt.Errorf("register node %q: %w", node, err)
	}
	if err != nil {
		h.log.Warn("node registration failed", "node", node, "err", err)
		return nil, err
	}
	return withKind(out, func() { out.APIVersion, out.Kind = "v1", "Node" })
}

// registrationLabels keeps the labels NodeRestriction lets a kubelet set on its own Node and
// adds cloudcore's: the configured NodeLabels and the edge label.
func (h *Handler) registrationLabels(in map[string]string) (labels map[string]string, dropped []string) {
	labels = make(map[string]string, len(in)+len(h.cfg.NodeLabels)+1)
	for k, v := range in {
		if k == EdgeLabel {
			continue // set below whatever the edge says, so not worth a warning
		}
		if !kubeletMaySetLabel(k) || len(validation.IsQualifiedName(k)) > 0 || len(validation.IsValidLabelValue(v)) > 0 {
			dropped = append(dropped, clip(k))
			continue
		}
		labels[k] = v
	}
	for k, v := range h.cfg.NodeLabels {
		labels[k] = v
	}
	labels[EdgeLabel] = ""
	slices.Sort(dropped)
	return labels, dropped
}

// nodeStatus replaces the status fields the edge reports.
func (h *Handler) nodeStatus(ctx context.Context, node string, content json.RawMessage) error {
	var in corev1.Node
	if err := decode(content, "node status", &in); err != nil {
		return err
	}
	if in.Name != "" && in.Name != node {
		return fmt.Errorf("%w: status of node %q names node %q", ErrMalformed, node, clip(in.Name))
	}
	if _, err := h.updateNodeStatus(ctx, node, &in.Status, nil); err != nil {
		h.log.Warn("node status update failed", "node", node, "err", err)
		return err
	}
	h.log.Debug("node status updated", "node", node)
	return nil
}

// updateNodeStatus merges st into the Node's status and writes it, re-reading the Node when
// another writer (the attach-detach controller, say) got there first. cur, when given, is an
// object the caller owns; otherwise the lister's copy is tried first, then the API server.
func (h *Handler) updateNodeStatus(ctx context.Context, node string, st *corev1.NodeStatus, cur *corev1.Node) (*corev1.Node, error) {
	if cur == nil {
		if n, ok := h.objs.Node(node); ok && n != nil {
			cur = n.DeepCopy()
		}
	}
	for attempt := 1; ; attempt++ {
		if cur == nil {
			got, err := h.getNode(ctx, node)
			if err != nil {
				return nil, err
			}
			cur = got
		}
		if err := requireEdge(cur); err != nil {
			return nil, err
		}
		mergeNodeStatus(&cur.Status, st)
		var out *corev1.Node
		err := h.call(ctx, "update node status", func(ctx context.Context) error {
			var err error
			out, err = h.client.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		switch {
		case err == nil:
			return out, nil
		case apierrors.IsConflict(err) && attempt < conflictAttempts:
			h.log.Debug("node status conflict, re-reading the node", "node", node, "attempt", attempt)
			cur = nil
			continue
		case apierrors.IsNotFound(err):
			return nil, notRegistered(node)
		}
		return nil, fmt.Errorf("update status of node %q: %w", node, err)
	}
}

// getNode reads the Node from the API server.
func (h *Handler) getNode(ctx context.Context, node string) (*corev1.Node, error) {
	var got *corev1.Node
	err := h.call(ctx, "get node", func(ctx context.Context) error {
		var err error
		got, err = h.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
		return nil, notRegistered(node)
	case err != nil:
		return nil, fmt.Errorf("get node %q: %w", node, err)
	}
	return got, nil
}

func notRegistered(node string) error {
	return fmt.Errorf("node %q is not registered: %w", node, ErrNotFound)
}

// requireEdge refuses to write a Node cloudcore did not register: a kubelet node of the same
// name is not the edge's to change.
func requireEdge(n *corev1.Node) error {
	if _, ok := n.Labels[EdgeLabel]; !ok {
		return fmt.Errorf("%w: a node named %q that is not an edge node (no %s label) already exists; "+
			"cloudcore will not take it over", ErrRefused, n.Name, EdgeLabel)
	}
	return nil
}

// mergeNodeStatus copies into dst the fields the edge reports. A field absent from src (nil or
// zero) is left alone, so a partial status never wipes what the edge did not mention; the
// attach-detach controller's volumesAttached/volumesInUse are never the edge's to change.
func mergeNodeStatus(dst, src *corev1.NodeStatus) {
	if len(src.Addresses) > 0 {
		dst.Addresses = src.Addresses
	}
	if len(src.Capacity) > 0 {
		dst.Capacity = src.Capacity
	}
	if len(src.Allocatable) > 0 {
		dst.Allocatable = src.Allocatable
	}
	for _, c := range src.Conditions {
		i := slices.IndexFunc(dst.Conditions, func(d corev1.NodeCondition) bool { return d.Type == c.Type })
		if i >= 0 {
			dst.Conditions[i] = c
		} else {
			dst.Conditions = append(dst.Conditions, c)
		}
	}
	if !equality.Semantic.DeepEqual(src.NodeInfo, corev1.NodeSystemInfo{}) {
		dst.NodeInfo = src.NodeInfo
	}
	if src.DaemonEndpoints != (corev1.NodeDaemonEndpoints{}) {
		dst.DaemonEndpoints = src.DaemonEndpoints
	}
	if src.Images != nil {
		dst.Images = src.Images
	}
	if src.RuntimeHandlers != nil {
		dst.RuntimeHandlers = src.RuntimeHandlers
	}
	if src.Features != nil {
		dst.Features = src.Features
	}
	if src.DeclaredFeatures != nil {
		dst.DeclaredFeatures = src.DeclaredFeatures
	}
}

// nodePatch applies the edge's strategic merge patch to its Node's status subresource. The
// subresource ignores spec but not metadata, so the patch is held to what NodeRestriction
// lets a kubelet change: status, annotations and the labels a kubelet may set.
func (h *Handler) nodePatch(ctx context.Context, node string, content json.RawMessage) (json.RawMessage, error) {
	patch, err := decodeMap(content, "node patch")
	if err != nil {
		return nil, err
	}
	if err := h.checkNodePatch(patch); err != nil {
		return nil, err
	}
	cur, ok := h.objs.Node(node)
	if !ok || cur == nil {
		if cur, err = h.getNode(ctx, node); err != nil {
			return nil, err
		}
	}
	if err := requireEdge(cur); err != nil {
		return nil, err
	}
	var out *corev1.Node
	err = h.call(ctx, "patch node status", func(ctx context.Context) error {
		var err error
		out, err = h.client.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, content, metav1.PatchOptions{}, "status")
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
		return nil, notRegistered(node)
	case err != nil:
		h.log.Warn("node patch failed", "node", node, "err", err)
		return nil, fmt.Errorf("patch status of node %q: %w", node, err)
	}
	h.log.Debug("node status patched", "node", node)
	return withKind(out, func() { out.APIVersion, out.Kind = "v1", "Node" })
}

// checkNodePatch refuses patches that reach beyond status, annotations and kubelet labels.
func (h *Handler) checkNodePatch(patch map[string]any) error {
	for k, v := range patch {
		switch k {
		case "status":
			if _, ok := v.(map[string]any); !ok {
				return fmt.Errorf("%w: node patch: status must be an object", ErrMalformed)
			}
		case "metadata":
			md, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("%w: node patch: metadata must be an object", ErrMalformed)
			}
			for mk, mv := range md {
				switch mk {
				case "annotations":
					if err := checkPatchStringMap("annotations", mv, func(string) error { return nil }); err != nil {
						return err
					}
				case "labels":
					if err := checkPatchStringMap("labels", mv, h.checkPatchLabel); err != nil {
						return err
					}
				default:
					return fmt.Errorf("%w: a node patch may change only status, labels and annotations, not metadata.%s",
						ErrRefused, clip(mk))
				}
			}
		default:
			return fmt.Errorf("%w: a node patch may change only status, labels and annotations, not %s", ErrRefused, clip(k))
		}
	}
	return nil
}

func (h *Handler) checkPatchLabel(key string) error {
	_, ours := h.cfg.NodeLabels[key]
	if key == EdgeLabel || ours || !kubeletMaySetLabel(key) {
		return fmt.Errorf("%w: an edge node may not set or remove the label %q on its Node", ErrRefused, clip(key))
	}
	return nil
}

// checkPatchStringMap checks a patch of a string map: keys pass check, values are strings or
// null (deletion), and no patch directive ($patch: replace, $retainKeys) can wipe keys wholesale.
func checkPatchStringMap(what string, v any, check func(string) error) error {
	m, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			return fmt.Errorf("%w: a node patch may not remove all %s", ErrRefused, what)
		}
		return fmt.Errorf("%w: node patch: metadata.%s must be an object", ErrMalformed, what)
	}
	for k, val := range m {
		if strings.HasPrefix(k, "$") {
			return fmt.Errorf("%w: node patch: directive %q not allowed in metadata.%s", ErrRefused, clip(k), what)
		}
		switch val.(type) {
		case string, nil:
		default:
			return fmt.Errorf("%w: node patch: metadata.%s[%q] must be a string or null", ErrMalformed, what, clip(k))
		}
		if err := check(k); err != nil {
			return err
		}
	}
	return nil
}

// kubeletMaySetLabel is NodeRestriction's rule (k8s.io/kubernetes plugin/pkg/admission/
// noderestriction, getForbiddenLabels) for labels a kubelet may set on its own Node: nothing
// under node-restriction.kubernetes.io, and under the kubernetes.io and k8s.io domains only the
// well-known kubelet labels and the kubelet.kubernetes.io and node.kubernetes.io namespaces.
// Labels of any other domain, or none, are allowed.
func kubeletMaySetLabel(key string) bool {
	ns := labelNamespace(key)
	if ns == corev1.LabelNamespaceNodeRestriction || strings.HasSuffix(ns, "."+corev1.LabelNamespaceNodeRestriction) {
		return false
	}
	if !isKubernetesNamespace(ns) {
		return true
	}
	return isKubeletLabel(key, ns)
}

func labelNamespace(key string) string {
	if ns, _, ok := strings.Cut(key, "/"); ok {
		return ns
	}
	return ""
}

func isKubernetesNamespace(ns string) bool {
	return ns == "kubernetes.io" || strings.HasSuffix(ns, ".kubernetes.io") ||
		ns == "k8s.io" || strings.HasSuffix(ns, ".k8s.io")
}

// isKubeletLabel mirrors k8s.io/kubelet/pkg/apis.IsKubeletLabel (not a dependency here).
func isKubeletLabel(key, ns string) bool {
	switch key {
	case corev1.LabelHostname,
		corev1.LabelTopologyZone, corev1.LabelTopologyRegion,
		corev1.LabelFailureDomainBetaZone, corev1.LabelFailureDomainBetaRegion,
		corev1.LabelInstanceType, corev1.LabelInstanceTypeStable,
		corev1.LabelOSStable, corev1.LabelArchStable,
		"beta.kubernetes.io/os", "beta.kubernetes.io/arch":
		return true
	}
	for _, allowed := range []string{corev1.LabelNamespaceSuffixKubelet, corev1.LabelNamespaceSuffixNode} {
		if ns == allowed || strings.HasSuffix(ns, "."+allowed) {
			return true
		}
	}
	return false
}
