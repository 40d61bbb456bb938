package devicetwin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// fakeBus is an in-memory broker: Publish delivers synchronously to every subscription
// whose filter matches, with MQTT's filter rules, and records the message.
type fakeBus struct {
	mu        sync.Mutex
	subs      map[int]sub
	next      int
	published []Message
}

type sub struct {
	filter string
	h      Handler
}

func newFakeBus() *fakeBus { return &fakeBus{subs: map[int]sub{}} }

func (b *fakeBus) Publish(ctx context.Context, m Message) error {
	b.mu.Lock()
	b.published = append(b.published, m)
	var hs []Handler
	for _, s := range b.subs {
		if topicMatch(s.filter, m.Topic) {
			hs = append(hs, s.h)
		}
	}
	b.mu.Unlock()
	for _, h := range hs {
		h(ctx, m)
	}
	return nil
}

func (b *fakeBus) Subscribe(filter string, h Handler) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.next
	b.next++
	b.subs[id] = sub{filter, h}
	return func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
	}, nil
}

func (b *fakeBus) subscriptions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// take returns and forgets the messages published so far on topics other than requests.
func (b *fakeBus) take() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.published
	b.published = nil
	return out
}

// topicMatch implements MQTT topic filters: + one level, # the rest (and the parent).
func topicMatch(filter, topic string) bool {
	f, t := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, seg := range f {
		if seg == "#" {
			return true
		}
		if i >= len(t) {
			return false
		}
		if seg != "+" && seg != t[i] {
			return false
		}
	}
	return len(f) == len(t)
}

func TestTopicMatch(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{filterTwinUpdate, "$hw/events/device/default/d1/twin/update", true},
		{filterTwinUpdate, "$hw/events/device/default/d1/twin/update/result", false},
		{filterTwinUpdate, "$hw/events/device/d1/twin/update", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/+", "a/b/c", false},
	} {
		if got := topicMatch(c.filter, c.topic); got != c.want {
			t.Errorf("topicMatch(%q, %q) = %v", c.filter, c.topic, got)
		}
	}
}

// fakeOutbox records enqueued messages; fail makes Enqueue fail.
type fakeOutbox struct {
	mu   sync.Mutex
	msgs []*wire.Message
	fail bool
}

func (o *fakeOutbox) Enqueue(_ context.Context, m *wire.Message, c store.Class) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c != store.Coalesced {
		return 0, errors.New("class must be Coalesced")
	}
	if o.fail {
		return 0, errors.New("outbox full")
	}
	o.msgs = append(o.msgs, m)
	return int64(len(o.msgs)), nil
}

func (o *fakeOutbox) setFail(v bool) {
	o.mu.Lock()
	o.fail = v
	o.mu.Unlock()
}

func (o *fakeOutbox) all() []*wire.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*wire.Message(nil), o.msgs...)
}

var testNow = time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC) // 1795312800000

const modelJSON = `{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceModel",
 "metadata":{"name":"thermo-model","namespace":"default","uid":"model-uid"},
 "spec":{"protocol":"modbus","properties":[
  {"name":"temperature","type":"FLOAT","accessMode":"ReadWrite","minimum":"-40","maximum":"125"},
  {"name":"count","type":"INT","accessMode":"ReadWrite"},
  {"name":"enabled","type":"BOOLEAN","accessMode":"ReadWrite"},
  {"name":"blob","type":"BYTES","accessMode":"ReadWrite"},
  {"name":"video","type":"STREAM","accessMode":"ReadOnly"},
  {"name":"label","type":"STRING","accessMode":"ReadWrite"},
  {"name":"ro","type":"INT","accessMode":"ReadOnly"}]}}`

// deviceJSON is device name with uid and temperature's desired value.
func deviceJSON(name, uid, desired string) string {
	return `{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device",
 "metadata":{"name":"` + name + `","namespace":"default","uid":"` + uid + `"},
 "spec":{"deviceModelRef":{"name":"thermo-model"},"nodeName":"edge-1","protocol":{"protocolName":"modbus"},
  "properties":[
   {"name":"temperature","desired":{"value":"` + desired + `"},"reportToCloud":true,"reportCycle":50},
   {"name":"count","reportToCloud":true,"reportCycle":50},
   {"name":"enabled"},{"name":"blob"},{"name":"video"},{"name":"label"},{"name":"ro"}]}}`
}

func apply(t *testing.T, db *store.DB, op wire.Operation, key, content string) {
	t.Helper()
	m := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: op, Resource: key}, json.RawMessage(content))
	if err := db.ApplyMessage(context.Background(), m); err != nil {
		t.Fatalf("ApplyMessage %s %s: %v", op, key, err)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// harness is a running Twin over a real store.
type harness struct {
	t      *testing.T
	dir    string
	db     *store.DB
	bus    *fakeBus
	outbox *fakeOutbox
	twin   *Twin
	cancel context.CancelFunc
	done   chan error

	mu       sync.Mutex
	expected []string // OnExpectedChange calls
}

func openStore(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dir, store.Options{Logger: quiet()})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	return db
}

// newHarness opens a store in dir (a new temp dir if ""), seeds it with the model and
// thermo-1 when seed is set, and starts a Twin.
func newHarness(t *testing.T, dir string, seed bool, outbox *fakeOutbox) *harness {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if outbox == nil {
		outbox = &fakeOutbox{}
	}
	h := &harness{t: t, dir: dir, db: openStore(t, dir), bus: newFakeBus(), outbox: outbox}
	if seed {
		apply(t, h.db, wire.OpInsert, "default/devicemodel/thermo-model", modelJSON)
		apply(t, h.db, wire.OpInsert, "default/device/thermo-1", deviceJSON("thermo-1", "uid-1", "20"))
	}
	h.start()
	return h
}

func (h *harness) start() {
	t := h.t
	t.Helper()
	tw, err := New(Config{
		NodeName: "edge-1", Store: h.db, Outbox: h.outbox, Bus: h.bus, Logger: quiet(),
		Now: func() time.Time { return testNow },
		OnExpectedChange: func(ns, name string) {
			h.mu.Lock()
			h.expected = append(h.expected, ns+"/"+name)
			h.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.twin, h.cancel, h.done = tw, cancel, make(chan error, 1)
	go func() { h.done <- tw.Run(ctx) }()
	t.Cleanup(h.stop)
	waitFor(t, "subscriptions", func() bool { return h.bus.subscriptions() == 4 })
}

// stop ends Run and closes the store; idempotent.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return")
	}
	h.cancel = nil
	if h.bus.subscriptions() != 0 {
		h.t.Errorf("%d subscriptions left after Run returned", h.bus.subscriptions())
	}
	_ = h.db.Close()
}

func (h *harness) expectedCalls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.expected...)
}

// request publishes payload on topic and returns what the twin published in answer.
func (h *harness) request(topic, payload string) []Message {
	h.t.Helper()
	h.bus.take()
	if err := h.bus.Publish(context.Background(), Message{Topic: topic, Payload: []byte(payload)}); err != nil {
		h.t.Fatal(err)
	}
	out := h.bus.take()
	if len(out) == 0 || out[0].Topic != topic {
		h.t.Fatalf("request not recorded first: %v", out)
	}
	return out[1:]
}

// waitPublished waits for the first message on topic since the last take and returns
// it, dropping it and the messages before it.
func (h *harness) waitPublished(topic string) Message {
	h.t.Helper()
	var got Message
	waitFor(h.t, "a message on "+topic, func() bool {
		h.bus.mu.Lock()
		defer h.bus.mu.Unlock()
		for i, m := range h.bus.published {
			if m.Topic == topic {
				got = m
				h.bus.published = h.bus.published[i+1:]
				return true
			}
		}
		return false
	})
	return got
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var eventIDRE = regexp.MustCompile(`"event_id":"[0-9a-f-]{36}"`)

// canonical re-encodes JSON with sorted keys and replaces generated event ids, for
// comparisons with golden text.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	out, _ := json.Marshal(v)
	return eventIDRE.ReplaceAllString(string(out), `"event_id":"GEN"`)
}

func checkJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if g, w := canonical(t, got), canonical(t, []byte(want)); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func topics(ms []Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Topic)
	}
	return out
}
