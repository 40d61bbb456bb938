package metaserver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/skerry-io/skerry/pkg/wire"
)

// fakeStore is an in-memory Store with revisions, a history for watches, compaction and a
// broadcast to running watches.
type fakeStore struct {
	mu        sync.Mutex
	rev       int64
	objs      map[wire.Key]Object
	history   []Event
	floor     int64 // watches from a revision below floor are compacted
	watches   map[*fakeWatch]struct{}
	listCalls int
}

func newFakeStore() *fakeStore {
	return &fakeStore{objs: map[wire.Key]Object{}, watches: map[*fakeWatch]struct{}{}}
}

func (s *fakeStore) Get(_ context.Context, key wire.Key) (Object, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[key]
	return o, ok, nil
}

func (s *fakeStore) List(_ context.Context, typ wire.ResourceType, ns string) ([]Object, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listCalls++
	var out []Object
	for k, o := range s.objs {
		if k.Type == typ && (ns == "" || k.Namespace == ns) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b Object) int { return a.Key.Compare(b.Key) })
	return out, s.rev, nil
}

func (s *fakeStore) lists() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listCalls
}

func (s *fakeStore) Watch(ctx context.Context, from int64) (Watch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if from < s.floor {
		return nil, fmt.Errorf("watch from %d, history starts at %d: %w", from, s.floor, ErrCompacted)
	}
	w := &fakeWatch{store: s, ch: make(chan Event), notify: make(chan struct{}, 1), done: make(chan struct{})}
	for _, ev := range s.history {
		if ev.Object.Revision > from {
			w.queue = append(w.queue, ev)
		}
	}
	s.watches[w] = struct{}{}
	go w.pump(ctx)
	return w, nil
}

// put stores content (any JSON-marshalable value or raw JSON) under key.
func (s *fakeStore) put(key wire.Key, content any) int64 {
	b, ok := content.(json.RawMessage)
	if !ok {
		var err error
		if b, err = json.Marshal(content); err != nil {
			panic(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	typ := Added
	if _, ok := s.objs[key]; ok {
		typ = Modified
	}
	o := Object{Key: key, Revision: s.rev, Content: b}
	s.objs[key] = o
	s.broadcast(Event{Type: typ, Object: o})
	return s.rev
}

func (s *fakeStore) delete(key wire.Key) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[key]
	if !ok {
		return s.rev
	}
	s.rev++
	delete(s.objs, key)
	o.Revision = s.rev
	s.broadcast(Event{Type: Deleted, Object: o})
	return s.rev
}

func (s *fakeStore) broadcast(ev Event) {
	s.history = append(s.history, ev)
	for w := range s.watches {
		w.push(ev)
	}
}

// compact drops history up to the current revision and ends every running watch with
// ErrCompacted, as a store does when a watcher falls too far behind.
func (s *fakeStore) compact() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.floor = s.rev
	s.history = nil
	for w := range s.watches {
		w.end(fmt.Errorf("watcher fell behind: %w", ErrCompacted))
		delete(s.watches, w)
	}
}

func (s *fakeStore) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watches)
}

type fakeWatch struct {
	store  *fakeStore
	ch     chan Event
	notify chan struct{}
	done   chan struct{}

	mu    sync.Mutex
	queue []Event
	err   error
	ended bool
}

func (w *fakeWatch) Events() <-chan Event { return w.ch }

func (w *fakeWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *fakeWatch) Stop() {
	w.store.mu.Lock()
	delete(w.store.watches, w)
	w.store.mu.Unlock()
	w.end(nil)
}

func (w *fakeWatch) end(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	w.ended = true
	w.err = err
	close(w.done)
}

func (w *fakeWatch) push(ev Event) {
	w.mu.Lock()
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// pump delivers queued events until the watch ends; it owns (and closes) ch.
func (w *fakeWatch) pump(ctx context.Context) {
	defer close(w.ch)
	defer func() {
		w.store.mu.Lock()
		delete(w.store.watches, w)
		w.store.mu.Unlock()
	}()
	for {
		w.mu.Lock()
		var ev Event
		have := len(w.queue) > 0
		if have {
			ev = w.queue[0]
			w.queue = w.queue[1:]
		}
		w.mu.Unlock()
		if !have {
			select {
			case <-w.notify:
				continue
			case <-w.done:
				return
			case <-ctx.Done():
				return
			}
		}
		select {
		case w.ch <- ev:
		case <-w.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

// fakeForwarder answers writes with a fixed reply or error and records what it got.
type fakeForwarder struct {
	mu    sync.Mutex
	sent  []*wire.Message
	err   error
	reply func(m *wire.Message) *wire.Message
}

func (f *fakeForwarder) Request(_ context.Context, m *wire.Message) (*wire.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, m)
	if f.err != nil {
		return nil, f.err
	}
	if f.reply == nil {
		return m.Ack(), nil
	}
	return f.reply(m), nil
}

func (f *fakeForwarder) last() *wire.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sent) == 0 {
		return nil
	}
	return f.sent[len(f.sent)-1]
}
