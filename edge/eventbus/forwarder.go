package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// Uplink takes an uploaded message towards the cloud; edgecore implements it with the
// outbox (a FIFO `publish null/mqttupload` message whose content is UploadContent).
type Uplink interface {
	Upload(ctx context.Context, topic string, payload []byte) error
}

// forwardQueueLength is how many uploads may wait for the Uplink. Past it, uploads are
// dropped rather than stalling the publishing app's connection to the broker.
const forwardQueueLength = 256

// ForwarderStats are the Forwarder's counters.
type ForwarderStats struct {
	// Forwarded counts uploads the Uplink accepted; Failed those it refused; Dropped those
	// that found the queue full.
	Forwarded, Failed, Dropped int64
}

// Forwarder hands the messages apps publish on UploadFilter and UploadRecordsTopic to an
// Uplink, one at a time in arrival order, on Run's goroutine rather than the handler's, so
// that a slow Uplink does not hold up the broker.
type Forwarder struct {
	bus   Bus
	up    Uplink
	log   *slog.Logger
	queue chan Message

	forwarded, failed, dropped atomic.Int64
	running                    atomic.Bool
}

// NewForwarder returns a Forwarder from bus to up. log may be nil (slog.Default()).
func NewForwarder(bus Bus, up Uplink, log *slog.Logger) *Forwarder {
	if log == nil {
		log = slog.Default()
	}
	return &Forwarder{bus: bus, up: up, log: log.With("module", "eventbus", "component", "upload-forwarder"),
		queue: make(chan Message, forwardQueueLength)}
}

// Run subscribes and forwards until ctx is done, then unsubscribes and returns nil. Uploads still queued then are dropped (apps publish at QoS 0
// or expect the broker, not edgecore, to keep messages).
func (f *Forwarder) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("eventbus: Forwarder.Run called more than once")
	}
	var unsubs []func()
	defer func() {
		for _, u := range unsubs {
			u()
		}
	}()
	for _, filter := range []string{UploadFilter, UploadRecordsTopic} {
		u, err := f.bus.Subscribe(filter, f.enqueue)
		if err != nil {
			return fmt.Errorf("eventbus: upload forwarder: %w", err)
		}
		unsubs = append(unsubs, u)
	}
	f.loop(ctx)
	return nil
}

// Stats returns the counters.
func (f *Forwarder) Stats() ForwarderStats {
	return ForwarderStats{Forwarded: f.forwarded.Load(), Failed: f.failed.Load(), Dropped: f.dropped.Load()}
}

func (f *Forwarder) enqueue(_ context.Context, m Message) {
	select {
	case f.queue <- m:
	default:
		f.dropped.Add(1)
		f.log.Warn("upload queue full; dropped an upload", "topic", m.Topic, "bytes", len(m.Payload))
	}
}

func (f *Forwarder) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-f.queue:
			if err := f.up.Upload(ctx, m.Topic, m.Payload); err != nil {
				f.failed.Add(1)
				f.log.Error("upload to the cloud failed; message dropped", "topic", m.Topic, "bytes", len(m.Payload), "err", err)
				continue
			}
			f.forwarded.Add(1)
			f.log.Debug("upload queued for the cloud", "topic", m.Topic, "bytes", len(m.Payload))
		}
	}
}
