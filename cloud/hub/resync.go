package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/skerry-io/skerry/cloud/hub/queue"
	"github.com/skerry-io/skerry/pkg/wire"
)

// NewDeleteMessage builds the message that removes key (with uid) from an edge: operation
// delete on the edge-form resource, content the object's minimal metadata.
func NewDeleteMessage(key wire.Key, uid string) (*wire.Message, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	if key.Name == "" {
		return nil, fmt.Errorf("hub: delete of %q names no object", key.String())
	}
	type meta struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace,omitempty"`
		UID       string `json:"uid,omitempty"`
	}
	content, err := json.Marshal(struct {
		Metadata meta `json:"metadata"`
	}{meta{Name: key.Name, Namespace: key.Namespace, UID: uid}})
	if err != nil {
		return nil, err
	}
	return wire.NewMessage(wire.Route{
		Source:    wire.CloudHubModule,
		Group:     wire.GroupResource,
		Operation: wire.OpDelete,
		Resource:  key.String(),
	}, content), nil
}

// resync queues exactly the difference between node's desired set and the inventory m.
func (s *session) resync(m *wire.Message) error {
	inv, err := wire.DecodeInventory(m)
	if err != nil {
		return err
	}
	if s.hub.cfg.Desired == nil {
		return errors.New("hub: no desired-state source configured")
	}
	if l, ok := s.hub.cfg.Desired.(NodeLocker); ok {
		defer l.LockNode(s.node)()
	}
	desired, err := s.hub.cfg.Desired.Desired(s.ctx, s.node)
	if err != nil {
		return fmt.Errorf("desired set: %w", err)
	}
	have := make(map[wire.Key]queue.Version, len(inv))
	for k, it := range inv {
		have[k] = queue.Version{UID: it.UID, ResourceVersion: it.ResourceVersion}
	}
	want := make(map[wire.Key]queue.Version, len(desired))
	for k, o := range desired {
		switch {
		case !o.Keep:
			want[k] = o.Version
		case hasKey(have, k):
			want[k] = have[k] // kept: what the edge has is what it keeps
		}
	}
	upserts, deletes := queue.Diff(want, have)
	// Work queued before this resync (while the node was away) was computed against an older
	// set. Settle every such key the diff does not touch: upsert its desired version, or
	// delete it if it is no longer desired, so no stale queued operation reaches the edge.
	covered := make(map[wire.Key]bool, len(upserts)+len(deletes))
	for _, k := range upserts {
		covered[k] = true
	}
	for _, k := range deletes {
		covered[k] = true
	}
	for _, k := range s.st.q.Keys() {
		if covered[k] {
			continue
		}
		switch o, ok := desired[k]; {
		case ok && o.Keep:
			// Left as queued: the source queues its newest version when it can.
		case ok:
			upserts = append(upserts, k)
		default:
			deletes = append(deletes, k)
		}
	}
	slices.SortFunc(upserts, wire.Key.Compare)
	slices.SortFunc(deletes, wire.Key.Compare)
	// Deletes first: for a uid change the queue must see delete then upsert.
	for _, k := range deletes {
		msg, err := NewDeleteMessage(k, inv[k].UID)
		if err != nil {
			return fmt.Errorf("delete %s: %w", k, err)
		}
		if err := s.st.q.Delete(k, inv[k].UID, msg); err != nil {
			return fmt.Errorf("delete %s: %w", k, err)
		}
	}
	full := 0
	for _, k := range upserts {
		o := desired[k]
		if o.Keep {
			continue
		}
		if o.Message == nil {
			return fmt.Errorf("upsert %s: desired object has no message builder", k)
		}
		msg, err := o.Message()
		if err != nil {
			return fmt.Errorf("upsert %s: %w", k, err)
		}
		if msg, err = edgeForm(s.node, msg); err != nil {
			return fmt.Errorf("upsert %s: %w", k, err)
		}
		if err := s.st.q.Upsert(k, o.Version, msg); err != nil {
			if errors.Is(err, queue.ErrFull) {
				full++ // keep going: deletes and updates of queued keys still fit
				continue
			}
			return fmt.Errorf("upsert %s: %w", k, err)
		}
	}
	s.log.Info("resync queued", "inventory", len(inv), "desired", len(desired), "upserts", len(upserts)-full, "deletes", len(deletes))
	if full > 0 {
		// The edge resends an inventory that was not acknowledged, which retries the resync.
		return fmt.Errorf("resync incomplete: %d upserts did not fit the queue: %w", full, queue.ErrFull)
	}
	return nil
}

func hasKey(m map[wire.Key]queue.Version, k wire.Key) bool {
	_, ok := m[k]
	return ok
}
