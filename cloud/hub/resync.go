package hub

import (
	"encoding/json"
	"errors"
	"fmt"

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
	want := make(map[wire.Key]queue.Version, len(desired))
	for k, o := range desired {
		want[k] = o.Version
	}
	have := make(map[wire.Key]queue.Version, len(inv))
	for k, it := range inv {
		have[k] = queue.Version{UID: it.UID, ResourceVersion: it.ResourceVersion}
	}
	upserts, deletes := queue.Diff(want, have)
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
