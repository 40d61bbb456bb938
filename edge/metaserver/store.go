package metaserver

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/skerry-io/skerry/pkg/wire"
)

// TypeEndpointSlice is the wire type of discovery.k8s.io/v1 EndpointSlices (pkg/wire names no
// constant for it yet).
const TypeEndpointSlice wire.ResourceType = "endpointslice"

// Object is one stored object as the metaserver needs it.
type Object struct {
	// Key names the object; Namespace is "" for cluster-scoped objects.
	Key wire.Key
	// Revision is the local store revision of the object's last change; it is served as
	// metadata.resourceVersion.
	Revision int64
	// Content is the full Kubernetes object JSON as the cloud sent it (apiVersion and kind
	// set). For a DELETED event it may be only the object's metadata.
	Content json.RawMessage
}

// EventType is the type of a watch event.
type EventType string

// Watch event types the store delivers.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// Event is one change of the store. Object.Revision is the event's revision.
type Event struct {
	Type   EventType
	Object Object
}

// Store is the local object store the metaserver reads.
type Store interface {
	// Get returns the object with key, or false if there is none.
	Get(ctx context.Context, key wire.Key) (Object, bool, error)
	// List returns the objects of typ in namespace ("" means every namespace, and the only
	// value for cluster-scoped types) and the store revision the list reflects.
	List(ctx context.Context, typ wire.ResourceType, namespace string) (objs []Object, revision int64, err error)
	// Watch delivers every change (of every type) with revision > from, in revision order.
	// It fails, or later ends with an error, wrapping [ErrCompacted] when from is older than
	// the history the store keeps.
	Watch(ctx context.Context, from int64) (Watch, error)
}

// Watch is a running store watch.
type Watch interface {
	// Events is closed when the watch ends (Stop, context, compaction, store shutdown).
	Events() <-chan Event
	// Err says why the watch ended; valid once Events is closed. nil after Stop.
	Err() error
	// Stop ends the watch and releases its resources; safe to call more than once.
	Stop()
}

// ErrCompacted is wrapped by a Store when the revision a watch starts from is no longer
// available. The metaserver answers it with 410 Gone (reason Expired) so clients relist.
var ErrCompacted = errors.New("metaserver: revision compacted")

// Forwarder sends a write to the cloud as the node and returns the cloud's answer (operation
// response or error).
type Forwarder interface {
	// Request sends m (a sync request) and waits for its answer. Errors wrap [ErrOffline]
	// when the node is not connected to the cloud.
	Request(ctx context.Context, m *wire.Message) (*wire.Message, error)
}

// ErrOffline is wrapped by a Forwarder when the node is disconnected from the cloud.
var ErrOffline = errors.New("metaserver: disconnected from the cloud")
