package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/skerry-io/skerry/edge/config"
	"github.com/skerry-io/skerry/edge/devicetwin"
	"github.com/skerry-io/skerry/edge/dmi"
	"github.com/skerry-io/skerry/edge/eventbus"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// startDevices starts the EventBus, the forwarding of MQTT uploads to the cloud, and, when
// enabled, the device twin and its DMI server. None of them needs the cloud: what goes up
// waits in the outbox.
func startDevices(start func(string, func(context.Context) error), cfg *config.EdgeCore, db *store.DB, notify func(), log *slog.Logger) error {
	if !cfg.EventBus.Enable {
		return nil
	}
	bus, err := eventbus.New(cfg.EventBus.Config, log.With("component", "eventbus"))
	if err != nil {
		return fmt.Errorf("eventBus: %w", err)
	}
	start("eventbus", bus.Run)
	fwd := eventbus.NewForwarder(bus, outboxUplink{db: db, notify: notify}, log.With("component", "mqttupload"))
	start("mqtt upload forwarder", fwd.Run)
	if !cfg.DeviceTwin.Enable {
		return nil
	}

	// The twin tells the DMI server when desired values change; the server exists only
	// after the twin, hence the indirection.
	var server atomic.Pointer[dmi.Server]
	twin, err := devicetwin.New(devicetwin.Config{
		NodeName: cfg.NodeName,
		Store:    db,
		Outbox:   db.Outbox(),
		Bus:      bus,
		Notify:   notify,
		OnExpectedChange: func(namespace, name string) {
			if s := server.Load(); s != nil {
				s.Resync(namespace, name)
			}
		},
		DefaultReportCycle: cfg.DeviceTwin.DefaultReportCycle.Duration,
		Logger:             log.With("component", "devicetwin"),
	})
	if err != nil {
		return fmt.Errorf("deviceTwin: %w", err)
	}
	srv, err := dmi.New(cfg.DMIConfig(), dmi.Deps{Store: db, Twins: twin, Logger: log.With("component", "dmi")})
	if err != nil {
		return fmt.Errorf("deviceTwin.dmi: %w", err)
	}
	server.Store(srv)
	start("devicetwin", twin.Run)
	// Mappers are answered only once the twin is loaded: before, the desired values they got
	// would be the cloud's, undoing (for a moment, on the device itself) values set at the
	// edge, as after every edgecore restart.
	start("dmi", func(ctx context.Context) error {
		select {
		case <-twin.Loaded():
		case <-ctx.Done():
			return nil
		}
		return srv.Run(ctx)
	})
	return nil
}

// outboxUplink queues what apps publish on the upload topics for the cloud, in order.
type outboxUplink struct {
	db     *store.DB
	notify func()
}

func (u outboxUplink) Upload(ctx context.Context, topic string, payload []byte) error {
	content, err := eventbus.UploadContent(topic, payload)
	if err != nil {
		return err
	}
	m := wire.NewMessage(wire.Route{Source: "eventbus", Group: wire.GroupResource, Operation: wire.OpPublish, Resource: eventbus.UploadResource}, content)
	if _, err := u.db.Outbox().Enqueue(ctx, m, store.FIFO); err != nil {
		return err
	}
	u.notify()
	return nil
}
