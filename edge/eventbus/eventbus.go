package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
)

// Message is one MQTT message.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// Handler is called for each message matching a subscription; it must not block for long.
// On the internal broker it runs on the publishing client's goroutine, on the external
// broker on the bus's single dispatcher goroutine. It may Publish and Subscribe.
type Handler func(ctx context.Context, m Message)

// Bus is what edgecore's modules use.
type Bus interface {
	Publish(ctx context.Context, m Message) error
	Subscribe(filter string, h Handler) (unsubscribe func(), err error)
}

// Errors callers can test for with errors.Is.
var (
	// ErrDisconnected: the external broker is not connected (mode external), so the
	// message was not sent. The client keeps reconnecting; try again later.
	ErrDisconnected = errors.New("eventbus: external MQTT broker not connected")
	// ErrNotRunning: Publish before Run started the bus.
	ErrNotRunning = errors.New("eventbus: not running")
	// ErrClosed: the bus has stopped.
	ErrClosed = errors.New("eventbus: closed")
	// ErrPayloadTooLarge: the payload exceeds Config.MaxPayloadBytes.
	ErrPayloadTooLarge = errors.New("eventbus: payload too large")
)

// Stats are the bus's counters since New.
type Stats struct {
	// Published counts messages Publish handed to at least one broker.
	Published int64
	// PublishFailures counts broker publishes that failed (in mode both, one per broker).
	PublishFailures int64
	// Delivered counts handler calls.
	Delivered int64
	// DroppedOversize counts incoming messages dropped for their size (on the internal
	// broker: for every client, not only edgecore's handlers).
	DroppedOversize int64
	// EchoesSkipped counts own publishes the external broker sent back in mode both.
	EchoesSkipped int64
	// ConnectAttempts counts connection attempts to the external broker; Connects the
	// successful ones (counted once the subscriptions are made again); Reconnects the
	// successful ones after the first.
	ConnectAttempts, Connects, Reconnects int64
	// ExternalConnected tells whether the external broker is connected now.
	ExternalConnected bool
	// InternalClients is the number of MQTT clients connected to the internal broker.
	InternalClients int64
}

type counters struct {
	published, publishFailures, delivered, droppedOversize, echoesSkipped atomic.Int64
	connectAttempts, connects                                             atomic.Int64
}

type subscription struct {
	id     int
	filter string
	h      Handler
}

const (
	stateNew = iota
	stateRunning
	stateClosed
)

// EventBus is the edge's MQTT layer; it implements Bus. Subscribe may be called before Run
// (subscriptions start when the brokers do); Publish needs Run.
type EventBus struct {
	cfg Config
	log *slog.Logger
	cnt counters

	// hctx is the context handlers get; cancelled when Run returns.
	hctx    context.Context
	hcancel context.CancelFunc
	ready   chan struct{}

	mu     sync.Mutex
	state  int
	nextID int
	subs   []*subscription // copy on write: readers take the slice under mu and iterate freely

	internal *internalBroker // nil in mode external
	external *externalClient // nil in mode internal
	echo     *echoFilter     // mode both only
}

var _ Bus = (*EventBus)(nil)

// New checks cfg and prepares the bus; Run starts it. log may be nil (slog.Default()).
func New(cfg Config, log *slog.Logger) (*EventBus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eventbus: invalid configuration: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	b := &EventBus{cfg: cfg, log: log.With("module", "eventbus"), ready: make(chan struct{})}
	b.hctx, b.hcancel = context.WithCancel(context.Background())
	if cfg.usesInternal() {
		b.internal = newInternalBroker(b)
	}
	if cfg.usesExternal() {
		ext, err := newExternalClient(b)
		if err != nil {
			return nil, err
		}
		b.external = ext
	}
	if cfg.Mode == ModeBoth {
		b.echo = newEchoFilter()
	}
	return b, nil
}

// Run starts the broker(s) and blocks until ctx is done; it then stops them and every
// goroutine of the bus and returns nil. It returns an error at once if the internal broker
// cannot listen. The external broker may be down: the client keeps trying.
func (b *EventBus) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.state != stateNew {
		b.mu.Unlock()
		return errors.New("eventbus: Run called more than once")
	}
	b.state = stateRunning
	b.mu.Unlock()
	defer b.hcancel()

	if b.internal != nil {
		if err := b.internal.start(); err != nil {
			b.setClosed()
			return err
		}
		if !isLoopbackListener(b.internal.addr()) {
			b.log.Warn("internal MQTT broker listens beyond loopback; any client that reaches it may publish and subscribe to every topic",
				"address", b.internal.addr())
		}
	}
	var wg sync.WaitGroup
	extCtx, extCancel := context.WithCancel(ctx)
	defer extCancel()
	if b.external != nil {
		wg.Go(func() { b.external.run(extCtx) })
	}
	b.log.Info("event bus started", "mode", b.cfg.Mode, "internalAddress", b.InternalAddr(),
		"externalURL", externalURL(b), "maxPayloadBytes", b.cfg.MaxPayloadBytes)
	close(b.ready)

	<-ctx.Done()
	b.setClosed()
	b.hcancel() // first, so that handlers waiting on their context let the brokers stop
	extCancel()
	wg.Wait()
	if b.internal != nil {
		b.internal.stop()
	}
	b.log.Info("event bus stopped")
	return nil
}

func externalURL(b *EventBus) string {
	if b.external == nil {
		return ""
	}
	return b.cfg.External.URL
}

func (b *EventBus) setClosed() {
	b.mu.Lock()
	b.state = stateClosed
	b.mu.Unlock()
}

// Ready is closed once Run has started the broker(s): the internal broker accepts clients
// and the external client is trying to connect.
func (b *EventBus) Ready() <-chan struct{} { return b.ready }

// InternalAddr is the internal broker's listening address once Ready ("" before, and in
// mode external).
func (b *EventBus) InternalAddr() string {
	if b.internal == nil {
		return ""
	}
	return b.internal.addr()
}

// Stats returns the counters.
func (b *EventBus) Stats() Stats {
	s := Stats{
		Published:       b.cnt.published.Load(),
		PublishFailures: b.cnt.publishFailures.Load(),
		Delivered:       b.cnt.delivered.Load(),
		DroppedOversize: b.cnt.droppedOversize.Load(),
		EchoesSkipped:   b.cnt.echoesSkipped.Load(),
		ConnectAttempts: b.cnt.connectAttempts.Load(),
		Connects:        b.cnt.connects.Load(),
	}
	s.Reconnects = max(s.Connects-1, 0)
	if b.external != nil {
		s.ExternalConnected = b.external.connected()
	}
	if b.internal != nil {
		s.InternalClients = b.internal.clients()
	}
	return s
}

// Publish sends m to the broker(s). It fails with ErrPayloadTooLarge for an oversize
// payload, ErrNotRunning before Run, ErrClosed after it, and wraps ErrDisconnected when the
// external broker is the only one and is down. In mode both it fails only when neither
// broker took the message; a failure of one is logged and counted.
func (b *EventBus) Publish(ctx context.Context, m Message) error {
	if err := ValidateTopic(m.Topic); err != nil {
		return fmt.Errorf("eventbus: publish: %w", err)
	}
	if len(m.Payload) > b.cfg.MaxPayloadBytes {
		return fmt.Errorf("%w: publish on %q: %d bytes, the limit is %d", ErrPayloadTooLarge, m.Topic, len(m.Payload), b.cfg.MaxPayloadBytes)
	}
	if m.QoS > 2 {
		return fmt.Errorf("eventbus: publish on %q: qos %d: want 0, 1 or 2", m.Topic, m.QoS)
	}
	b.mu.Lock()
	state, subs := b.state, b.subs
	b.mu.Unlock()
	switch state {
	case stateNew:
		return ErrNotRunning
	case stateClosed:
		return ErrClosed
	}

	var errs []error
	ok := false
	if b.external != nil {
		if b.echo != nil && slices.ContainsFunc(subs, func(s *subscription) bool { return matchFilter(s.filter, m.Topic) }) {
			b.echo.expect(m.Topic, m.Payload)
		}
		if err := b.external.publish(ctx, m); err != nil {
			if b.echo != nil {
				b.echo.forget(m.Topic, m.Payload)
			}
			errs = append(errs, err)
		} else {
			ok = true
		}
	}
	if b.internal != nil {
		if err := b.internal.publish(m); err != nil {
			errs = append(errs, err)
		} else {
			ok = true
		}
	}
	b.cnt.publishFailures.Add(int64(len(errs)))
	err := errors.Join(errs...)
	if !ok {
		return fmt.Errorf("eventbus: publish on %q: %w", m.Topic, err)
	}
	b.cnt.published.Add(1)
	if err != nil {
		b.log.Warn("message published on one broker only", "topic", m.Topic, "err", err)
	}
	return nil
}

// Subscribe calls h for every message whose topic matches filter, from every broker of the
// mode, until unsubscribe is called. On a connected external broker it returns once the
// broker has accepted the subscription; otherwise the subscription is made at the next
// connection.
func (b *EventBus) Subscribe(filter string, h Handler) (unsubscribe func(), err error) {
	if err := ValidateFilter(filter); err != nil {
		return nil, fmt.Errorf("eventbus: subscribe: %w", err)
	}
	if h == nil {
		return nil, errors.New("eventbus: subscribe: nil handler")
	}
	b.mu.Lock()
	if b.state == stateClosed {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.nextID++
	s := &subscription{id: b.nextID, filter: filter, h: h}
	b.subs = append(slices.Clip(b.subs), s)
	b.mu.Unlock()

	if b.external != nil {
		if err := b.external.subscribe(filter); err != nil {
			b.removeSub(s)
			return nil, err
		}
	}
	if b.internal != nil {
		if err := b.internal.subscribe(s); err != nil {
			b.removeSub(s)
			if b.external != nil {
				b.external.unsubscribe(filter)
			}
			return nil, err
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			b.removeSub(s)
			if b.internal != nil {
				b.internal.unsubscribe(s)
			}
			if b.external != nil {
				b.external.unsubscribe(filter)
			}
		})
	}, nil
}

func (b *EventBus) removeSub(s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs = slices.DeleteFunc(slices.Clone(b.subs), func(x *subscription) bool { return x == s })
}

// snapshot returns the current subscriptions; the slice is never modified in place.
func (b *EventBus) snapshot() []*subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subs
}

// deliver calls h with a private copy of the payload, so that a handler that keeps or
// changes it does not affect other handlers or the broker.
func (b *EventBus) deliver(h Handler, m Message) {
	m.Payload = slices.Clone(m.Payload)
	b.cnt.delivered.Add(1)
	h(b.hctx, m)
}

// dropOversize counts and logs an incoming message over the limit.
func (b *EventBus) dropOversize(source, topic string, size int) {
	b.cnt.droppedOversize.Add(1)
	b.log.Warn("dropped an MQTT message over the payload limit", "broker", source, "topic", topic,
		"bytes", size, "maxPayloadBytes", b.cfg.MaxPayloadBytes)
}

func isLoopbackListener(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func defaultClientID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown"
	}
	return "edgecore-" + h
}
