package eventbus

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

const (
	internalListenerID = "edgecore-tcp"
	// packetOverhead is what an MQTT packet may carry besides its payload: a topic of up
	// to 64 KiB and, in MQTT 5, properties. The broker disconnects a client whose packet
	// exceeds MaxPayloadBytes+packetOverhead without reading it, which bounds the memory a
	// client can make the broker allocate; the exact payload limit is enforced per message
	// by the hook, which only drops the message.
	packetOverhead = 128 << 10
)

// internalBroker is the embedded mochi broker.
type internalBroker struct {
	bus *EventBus
	srv *mqtt.Server

	mu      sync.Mutex
	tcp     *listeners.TCP // set once listening
	started bool
}

func newInternalBroker(b *EventBus) *internalBroker {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(b.cfg.MaxPayloadBytes + packetOverhead)
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true,
		// mochi logs client connects and disconnects at info; edgecore keeps its warnings.
		Logger: slog.New(minLevelHandler{h: b.log.Handler(), min: slog.LevelWarn}).With("component", "mqtt-broker"),
	})
	return &internalBroker{bus: b, srv: srv}
}

// start adds the hook and the TCP listener (binding its address) and serves.
func (ib *internalBroker) start() error {
	if err := ib.srv.AddHook(&limitHook{bus: ib.bus}, nil); err != nil {
		return fmt.Errorf("eventbus: internal broker hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: internalListenerID, Address: ib.bus.cfg.Internal.Address})
	if err := ib.srv.AddListener(tcp); err != nil {
		return fmt.Errorf("eventbus: internal broker: listen on %s: %w", ib.bus.cfg.Internal.Address, err)
	}
	if err := ib.srv.Serve(); err != nil {
		tcp.Close(func(string) {})
		return fmt.Errorf("eventbus: internal broker: %w", err)
	}
	ib.mu.Lock()
	ib.tcp, ib.started = tcp, true
	ib.mu.Unlock()
	return nil
}

// stop disconnects the clients, closes the listener and waits for the client goroutines.
func (ib *internalBroker) stop() {
	ib.mu.Lock()
	started := ib.started
	ib.started = false
	ib.mu.Unlock()
	if started {
		_ = ib.srv.Close() // never fails
	}
}

// addr is the bound address once started (port 0 resolved), the configured one before.
func (ib *internalBroker) addr() string {
	ib.mu.Lock()
	tcp := ib.tcp
	ib.mu.Unlock()
	if tcp == nil {
		return ib.bus.cfg.Internal.Address
	}
	return tcp.Address()
}

func (ib *internalBroker) clients() int64 { return atomic.LoadInt64(&ib.srv.Info.ClientsConnected) }

func (ib *internalBroker) publish(m Message) error {
	if err := ib.srv.Publish(m.Topic, m.Payload, m.Retained, m.QoS); err != nil {
		return fmt.Errorf("internal broker: %w", err)
	}
	return nil
}

// subscribe registers s with the broker's inline client; the subscription id is s.id, so
// that two subscriptions of one filter stay apart.
func (ib *internalBroker) subscribe(s *subscription) error {
	err := ib.srv.Subscribe(s.filter, s.id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		ib.bus.deliver(s.h, Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retained: pk.FixedHeader.Retain})
	})
	if err != nil {
		return fmt.Errorf("eventbus: subscribe %q on the internal broker: %w", s.filter, err)
	}
	return nil
}

func (ib *internalBroker) unsubscribe(s *subscription) {
	if err := ib.srv.Unsubscribe(s.filter, s.id); err != nil {
		ib.bus.log.Warn("unsubscribe on the internal broker failed", "filter", s.filter, "err", err)
	}
}

// limitHook lets every client connect and use every topic (KubeEdge's internal broker is
// anonymous, on loopback) and drops messages over the payload limit before they reach any
// subscriber or the retained store.
type limitHook struct {
	mqtt.HookBase
	bus *EventBus
}

func (h *limitHook) ID() string { return "edgecore-eventbus-limit" }

func (h *limitHook) Provides(b byte) bool {
	return bytes.IndexByte([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish}, b) >= 0
}

func (h *limitHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *limitHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// OnPublish drops an oversize message. An MQTT 5 client publishing at QoS 1 is told so in
// its PUBACK (reason "packet too large"); other clients get the usual acknowledgement, as
// MQTT 3.1.1 has no negative one, and the message goes nowhere.
func (h *limitHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if len(pk.Payload) <= h.bus.cfg.MaxPayloadBytes {
		return pk, nil
	}
	h.bus.dropOversize("internal", pk.TopicName, len(pk.Payload))
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
		return pk, packets.ErrPacketTooLarge
	}
	return pk, packets.CodeSuccessIgnore
}

// minLevelHandler passes on records at min or above.
type minLevelHandler struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

func (m minLevelHandler) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }

func (m minLevelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevelHandler{h: m.h.WithAttrs(as), min: m.min}
}

func (m minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{h: m.h.WithGroup(name), min: m.min}
}
