package mapper

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/skerry-io/skerry/api/dmi/v1beta1"
)

// testBroker is an embedded mochi broker on loopback that records what clients publish, so
// a test sees the QoS and retain flag the pusher asked for, not what a subscriber was given.
type testBroker struct {
	srv  *mochi.Server
	addr string // tcp://host:port

	mu   sync.Mutex
	pubs []packets.Packet
}

type recordHook struct {
	mochi.HookBase
	b *testBroker
}

func (h *recordHook) ID() string { return "mapper-test-record" }

func (h *recordHook) Provides(b byte) bool {
	return bytes.IndexByte([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish}, b) >= 0
}

func (h *recordHook) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (h *recordHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

func (h *recordHook) OnPublish(_ *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	h.b.mu.Lock()
	h.b.pubs = append(h.b.pubs, pk.Copy(false))
	h.b.mu.Unlock()
	return pk, nil
}

func startBroker(t *testing.T) *testBroker {
	t.Helper()
	b := &testBroker{srv: mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})}
	if err := b.srv.AddHook(&recordHook{b: b}, nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "test-tcp", Address: "127.0.0.1:0"})
	if err := b.srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.srv.Close() })
	b.addr = "tcp://" + tcp.Address()
	return b
}

// published returns the packets clients published to topic so far.
func (b *testBroker) published(topic string) []packets.Packet {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []packets.Packet
	for _, pk := range b.pubs {
		if pk.TopicName == topic {
			out = append(out, pk)
		}
	}
	return out
}

var subscriberSeq atomic.Int64

// subscribe connects a paho client to addr and subscribes to topic; messages arrive on the
// returned channel (newest dropped when it is full).
func subscribe(t *testing.T, addr, topic string, qos byte) <-chan paho.Message {
	t.Helper()
	msgs := make(chan paho.Message, 64)
	opts := paho.NewClientOptions().AddBroker(addr).
		SetClientID(fmt.Sprintf("mapper-test-sub-%d", subscriberSeq.Add(1))).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect to %s: %v", addr, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(250) })
	tok := c.Subscribe(topic, qos, func(_ paho.Client, m paho.Message) {
		select {
		case msgs <- m:
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return msgs
}

func receive(t *testing.T, what string, msgs <-chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return nil
	}
}

// checkReading decodes a pushed payload, checking the documented field names exactly.
func checkReading(t *testing.T, payload []byte, device string) {
	t.Helper()
	var fields map[string]any
	if err := json.Unmarshal(payload, &fields); err != nil {
		t.Fatalf("payload %q: %v", payload, err)
	}
	want := map[string]any{
		"namespace": "default", "deviceName": device, "propertyName": "temperature",
		"value": "21.5", "type": "float",
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("payload %s = %v, want %v", k, fields[k], v)
		}
	}
	ts, ok := fields["timestamp"].(float64)
	if now := float64(time.Now().UnixMilli()); !ok || ts <= 0 || ts > now || now-ts > 60_000 {
		t.Errorf("payload timestamp = %v, want recent unix milliseconds", fields["timestamp"])
	}
	if len(fields) != len(want)+1 {
		t.Errorf("payload has fields %v, want exactly the documented ones", fields)
	}
}

// TestMQTTPush runs a full device whose property pushes to a real broker: a subscriber gets
// the documented JSON, the client published with the configured QoS and retain flag, and a
// subscriber that comes later is given the retained reading.
func TestMQTTPush(t *testing.T) {
	b := startBroker(t)
	const topic = "skerry/test/t7/temperature"
	live := subscribe(t, b.addr, topic, 2)

	d := testDevice("t7", "", 50)
	d.Spec.Properties[0].PushMethod = &v1beta1.PushMethod{
		Mqtt: &v1beta1.PushMethodMQTT{Address: b.addr, Topic: topic, Qos: 1, Retained: true},
	}
	start(t, &v1beta1.MapperRegisterResponse{ModelList: []*v1beta1.DeviceModel{testModel()}, DeviceList: []*v1beta1.Device{d}})

	m := receive(t, "a pushed reading", live)
	checkReading(t, m.Payload(), "t7")
	// Delivered at min(published 1, subscribed 2); a live subscription never sees the retain flag.
	if m.Topic() != topic || m.Qos() != 1 || m.Retained() {
		t.Errorf("live message topic %q qos %d retained %v, want %q 1 false", m.Topic(), m.Qos(), m.Retained(), topic)
	}
	pubs := b.published(topic)
	if len(pubs) == 0 {
		t.Fatal("broker saw no publish")
	}
	if pk := pubs[0]; pk.FixedHeader.Qos != 1 || !pk.FixedHeader.Retain {
		t.Errorf("published qos %d retain %v, want 1 true", pk.FixedHeader.Qos, pk.FixedHeader.Retain)
	}

	late := subscribe(t, b.addr, topic, 1)
	r := receive(t, "the retained reading", late)
	checkReading(t, r.Payload(), "t7")
	if !r.Retained() {
		t.Error("late subscriber's first message is not flagged retained")
	}
}

// TestPusherMQTTQoSAndRetain drives the pusher directly for every QoS, with and without retain.
func TestPusherMQTTQoSAndRetain(t *testing.T) {
	b := startBroker(t)
	p := newPusher("qos-test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer p.close()
	c, err := p.broker(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pusher connected", c.IsConnectionOpen)

	for qos := byte(0); qos <= 2; qos++ {
		for _, retained := range []bool{false, true} {
			t.Run(fmt.Sprintf("qos%d-retained-%v", qos, retained), func(t *testing.T) {
				topic := fmt.Sprintf("skerry/test/q%d/%v", qos, retained)
				live := subscribe(t, b.addr, topic, 2)
				j := pushJob{
					push: &PushMethod{MQTT: &PushMQTT{Address: b.addr, Topic: topic, QoS: qos, Retained: retained}},
					reading: Reading{Namespace: "default", DeviceName: "q", PropertyName: "temperature",
						Value: "21.5", Type: "float", Timestamp: time.Now().UnixMilli()},
				}
				if err := p.send(context.Background(), j); err != nil {
					t.Fatalf("send: %v", err)
				}
				m := receive(t, "the reading", live)
				checkReading(t, m.Payload(), "q")
				if m.Qos() != qos {
					t.Errorf("delivered at qos %d, want %d", m.Qos(), qos)
				}
				pubs := b.published(topic)
				if len(pubs) != 1 || pubs[0].FixedHeader.Qos != qos || pubs[0].FixedHeader.Retain != retained {
					t.Fatalf("published %d packets, first %+v; want one at qos %d retain %v", len(pubs), pubs, qos, retained)
				}
				// The broker stores a retained message before it delivers it, so by now the
				// store is settled: a later subscriber would get exactly this.
				if kept := b.srv.Topics.Messages(topic); (len(kept) == 1) != retained {
					t.Errorf("broker keeps %d retained messages, want retained=%v", len(kept), retained)
				}
			})
		}
	}
}

// recordHandler keeps log records so a test can wait for a message.
type recordHandler struct {
	mu   sync.Mutex
	recs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		sb.WriteString(" " + a.String())
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, sb.String())
	h.mu.Unlock()
	return nil
}

func (h *recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{h: h, attrs: as}
}

func (h *recordHandler) WithGroup(string) slog.Handler { return h }

func (h *recordHandler) find(sub ...string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		all := true
		for _, s := range sub {
			all = all && strings.Contains(r, s)
		}
		if all {
			return true
		}
	}
	return false
}

// attrHandler adds the attributes of Logger.With to every record.
type attrHandler struct {
	h     *recordHandler
	attrs []slog.Attr
}

func (a *attrHandler) Enabled(context.Context, slog.Level) bool { return true }

func (a *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(a.attrs...)
	return a.h.Handle(ctx, r)
}

func (a *attrHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{h: a.h, attrs: append(append([]slog.Attr(nil), a.attrs...), as...)}
}

func (a *attrHandler) WithGroup(string) slog.Handler { return a }

// deadAddress is a loopback TCP address nothing listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return "tcp://" + addr
}

// pahoGoroutines counts goroutines running paho code.
func pahoGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/eclipse/paho.mqtt.golang") {
			count++
		}
	}
	return count
}

// TestMQTTPushBrokerUnreachable: a push to a broker nobody runs fails with an error and a
// warning naming the device and property, the device goes on reading and reporting, and
// stopping the mapper leaves no MQTT client goroutine behind.
func TestMQTTPushBrokerUnreachable(t *testing.T) {
	addr := deadAddress(t)

	p := newPusher("dead-test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	j := pushJob{
		push:    &PushMethod{MQTT: &PushMQTT{Address: addr, Topic: "skerry/test/dead", QoS: 1}},
		reading: Reading{DeviceName: "d", PropertyName: "temperature", Value: "1", Type: "int"},
	}
	err := p.send(context.Background(), j)
	if err == nil || !strings.Contains(err.Error(), "mqtt push") || !strings.Contains(err.Error(), addr) {
		t.Errorf("send to a dead broker: err = %v, want an mqtt push error naming %s", err, addr)
	}
	p.close()
	if err := p.send(context.Background(), j); err == nil {
		t.Error("send after close succeeded")
	}

	logs := &recordHandler{}
	dir := t.TempDir()
	h := &harness{dir: dir, drv: newFakeDriver(), done: make(chan error, 1)}
	h.drv.values["temperature"] = DoubleValue(21.5)
	h.drv.values["setpoint"] = IntValue(10)
	d := testDevice("t8", "", 50)
	d.Spec.Properties[0].PushMethod = &v1beta1.PushMethod{
		Mqtt: &v1beta1.PushMethodMQTT{Address: addr, Topic: "skerry/test/t8", Qos: 1, Retained: true},
	}
	h.edge = startEdge(t, h.dmi(), &v1beta1.MapperRegisterResponse{
		ModelList: []*v1beta1.DeviceModel{testModel()}, DeviceList: []*v1beta1.Device{d}})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	cfg := Config{
		Name: "dead-mapper", Version: "v0", Socket: h.sock(), DMISocket: h.dmi(),
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, StateCycle: 100 * time.Millisecond,
		Logger: slog.New(logs),
	}
	go func() { h.done <- Run(ctx, cfg, h.drv) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			h.stop(t)()
		}
	})

	waitFor(t, "push failure warning", func() bool {
		return logs.find("WARN push failed", "property=temperature", "device=default/t8", addr)
	})
	var reads int
	h.drv.get(func(d *fakeDriver) bool { reads = d.reads; return true })
	waitFor(t, "reads after the push failure", func() bool {
		return h.drv.get(func(d *fakeDriver) bool { return d.reads >= reads+3 })
	})
	waitFor(t, "twin reported", func() bool {
		tw := h.edge.twin("t8", "temperature")
		return tw != nil && tw.GetReported().GetValue() == "21.5"
	})
	if st := h.edge.lastState("t8"); st != "ok" {
		t.Errorf("device state = %q while only its push fails, want ok", st)
	}

	h.stop(t)()
	stopped = true
	waitFor(t, "MQTT client goroutines to end after the mapper stopped", func() bool { return pahoGoroutines() == 0 })
}
