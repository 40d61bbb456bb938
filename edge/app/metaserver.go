package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/skerry-io/skerry/edge/hub"
	"github.com/skerry-io/skerry/edge/metaserver"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// metaStore adapts the store to the MetaServer's Store.
type metaStore struct{ db *store.DB }

func toMeta(o store.Object) metaserver.Object {
	return metaserver.Object{Key: o.Key, Revision: o.Revision, Content: o.Content}
}

func (m metaStore) Get(ctx context.Context, key wire.Key) (metaserver.Object, bool, error) {
	o, ok, err := m.db.Get(ctx, key)
	if err != nil || !ok {
		return metaserver.Object{}, false, err
	}
	return toMeta(o), true, nil
}

func (m metaStore) List(ctx context.Context, typ wire.ResourceType, namespace string) ([]metaserver.Object, int64, error) {
	objs, rev, err := m.db.List(ctx, typ, namespace)
	if err != nil {
		return nil, 0, err
	}
	out := make([]metaserver.Object, len(objs))
	for i, o := range objs {
		out[i] = toMeta(o)
	}
	return out, rev, nil
}

func (m metaStore) Watch(ctx context.Context, from int64) (metaserver.Watch, error) {
	w, err := m.db.Watch(ctx, from)
	if err != nil {
		return nil, compacted(err)
	}
	mw := &metaWatch{w: w, events: make(chan metaserver.Event), stop: make(chan struct{})}
	mw.wg.Go(mw.run)
	return mw, nil
}

// compacted marks the store's ErrCompacted for the MetaServer, which answers 410 Gone.
func compacted(err error) error {
	if errors.Is(err, store.ErrCompacted) {
		return fmt.Errorf("%w: %w", metaserver.ErrCompacted, err)
	}
	return err
}

// metaWatch converts the store's events; its goroutine ends with the store watcher or Stop.
type metaWatch struct {
	w      *store.Watcher
	events chan metaserver.Event
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	err    atomic.Pointer[error]
}

func (m *metaWatch) run() {
	defer close(m.events)
	for e := range m.w.Events() {
		select {
		case m.events <- metaserver.Event{Type: metaserver.EventType(e.Type), Object: toMeta(e.Object)}:
		case <-m.stop:
			return
		}
	}
	if err := m.w.Err(); err != nil {
		err = compacted(err)
		m.err.Store(&err)
	}
}

func (m *metaWatch) Events() <-chan metaserver.Event { return m.events }

func (m *metaWatch) Err() error {
	if p := m.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (m *metaWatch) Stop() {
	m.once.Do(func() {
		close(m.stop)
		m.w.Stop()
		m.wg.Wait()
	})
}

// forwarder sends MetaServer writes through EdgeHub once it runs; before that, and whenever
// the node is disconnected, writes are refused as offline.
type forwarder struct{ hub atomic.Pointer[hub.Hub] }

func (f *forwarder) Request(ctx context.Context, m *wire.Message) (*wire.Message, error) {
	h := f.hub.Load()
	if h == nil {
		return nil, fmt.Errorf("%w: the node has not joined the cloud yet", metaserver.ErrOffline)
	}
	r, err := h.Request(ctx, m)
	if errors.Is(err, hub.ErrOffline) {
		return nil, fmt.Errorf("%w: %w", metaserver.ErrOffline, err)
	}
	return r, err
}
