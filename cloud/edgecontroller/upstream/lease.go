package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/cloud/edgecontroller/authz"
)

// leaseEntry is one node's last written Lease. Its lock orders that node's heartbeats, so the
// cached resourceVersion is the one the next update is based on.
type leaseEntry struct {
	mu    sync.Mutex
	lease *coordinationv1.Lease // nil until known; owned by the entry
}

func (h *Handler) leaseEntry(node string) *leaseEntry {
	h.leaseMu.Lock()
	defer h.leaseMu.Unlock()
	e, ok := h.leases[node]
	if !ok {
		e = &leaseEntry{}
		h.leases[node] = e
	}
	return e
}

// ForgetNode drops what the handler keeps about node (its last Lease, its upload count), for
// when the node is deleted. Keeping it is harmless otherwise: a stale cache costs one conflict.
func (h *Handler) ForgetNode(node string) {
	h.leaseMu.Lock()
	delete(h.leases, node)
	h.leaseMu.Unlock()
	h.uploadMu.Lock()
	delete(h.uploads, node)
	h.uploadMu.Unlock()
}

// heartbeat renews the node's Lease the way the kubelet does: update the spec of the last
// Lease seen (no read per heartbeat), create it on NotFound with the Node as owner so that it
// goes with the Node, and re-read it on conflict.
func (h *Handler) heartbeat(ctx context.Context, node string, content json.RawMessage) error {
	var in coordinationv1.Lease
	if err := decode(content, "lease", &in); err != nil {
		return err
	}
	if (in.Name != "" && in.Name != node) || (in.Namespace != "" && in.Namespace != authz.LeaseNamespace) {
		return fmt.Errorf("%w: lease of node %q names %s/%s", ErrMalformed, node, clip(in.Namespace), clip(in.Name))
	}
	holder := node
	if in.Spec.HolderIdentity != nil && *in.Spec.HolderIdentity != "" {
		holder = *in.Spec.HolderIdentity
	}
	duration := int32(DefaultLeaseDurationSeconds)
	if in.Spec.LeaseDurationSeconds != nil && *in.Spec.LeaseDurationSeconds > 0 {
		duration = *in.Spec.LeaseDurationSeconds
	}
	renew := metav1.NewMicroTime(h.clock.Now())
	if in.Spec.RenewTime != nil && !in.Spec.RenewTime.IsZero() {
		renew = *in.Spec.RenewTime
	}
	setSpec := func(l *coordinationv1.Lease) {
		l.Spec.HolderIdentity = &holder
		l.Spec.LeaseDurationSeconds = &duration
		l.Spec.RenewTime = &renew
	}

	e := h.leaseEntry(node)
	e.mu.Lock()
	defer e.mu.Unlock()
	leases := h.client.CoordinationV1().Leases(authz.LeaseNamespace)
	cur := e.lease
	e.lease = nil // set again only after a successful write
	create := false
	for attempt := 1; ; attempt++ {
		if cur == nil && !create {
			err := h.call(ctx, "get lease", func(ctx context.Context) error {
				var err error
				cur, err = leases.Get(ctx, node, metav1.GetOptions{})
				return err
			})
			switch {
			case apierrors.IsNotFound(err):
				cur, create = nil, true
			case err != nil:
				return fmt.Errorf("get lease of node %q: %w", node, err)
			}
		}
		var out *coordinationv1.Lease
		var err error
		if create {
			l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: authz.LeaseNamespace}}
			setSpec(l)
			if ref := h.nodeOwner(ctx, node); ref != nil {
				l.OwnerReferences = []metav1.OwnerReference{*ref}
			}
			err = h.call(ctx, "create lease", func(ctx context.Context) error {
				var err error
				out, err = leases.Create(ctx, l, metav1.CreateOptions{})
				return err
			})
		} else {
			l := cur.DeepCopy()
			setSpec(l)
			if len(l.OwnerReferences) == 0 { // created before the Node existed, as the kubelet may
				if ref := h.nodeOwner(ctx, node); ref != nil {
					l.OwnerReferences = []metav1.OwnerReference{*ref}
				}
			}
			err = h.call(ctx, "update lease", func(ctx context.Context) error {
				var err error
				out, err = leases.Update(ctx, l, metav1.UpdateOptions{})
				return err
			})
		}
		if err == nil {
			e.lease = out
			h.log.Debug("lease renewed", "node", node, "created", create)
			return nil
		}
		if attempt < conflictAttempts {
			switch {
			case apierrors.IsConflict(err), create && apierrors.IsAlreadyExists(err):
				cur, create = nil, false // re-read
				continue
			case !create && apierrors.IsNotFound(err):
				cur, create = nil, true
				continue
			}
		}
		h.log.Warn("lease renewal failed", "node", node, "err", err)
		return fmt.Errorf("renew lease of node %q: %w", node, err)
	}
}

// nodeOwner returns the owner reference the kubelet puts on its Lease, or nil when the Node
// cannot be read now (the next renewal adds it).
func (h *Handler) nodeOwner(ctx context.Context, node string) *metav1.OwnerReference {
	n, ok := h.objs.Node(node)
	if !ok || n == nil {
		var err error
		if n, err = h.getNode(ctx, node); err != nil {
			h.log.Debug("lease: node not readable, no owner reference yet", "node", node, "err", err)
			return nil
		}
	}
	if n.UID == "" {
		return nil
	}
	return &metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: n.Name, UID: n.UID}
}
