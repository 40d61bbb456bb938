package devicetwin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Source is the module name upstream messages carry, as KubeEdge's device twin.
const Source = "devicetwin"

// Defaults and bounds of the upstream coalescing window.
const (
	DefaultReportCycle = time.Second
	// maxReportCycle caps the window: a property read hourly must not hold its newest
	// value back from the cloud for an hour.
	maxReportCycle = time.Minute
	// retryDelay is the wait after a failed enqueue (outbox full, disk full).
	retryDelay = time.Second
)

// Outbox is the part of *store.Outbox the twin writes to.
type Outbox interface {
	Enqueue(ctx context.Context, msg *wire.Message, class store.Class) (int64, error)
}

// Config configures [New].
type Config struct {
	// NodeName names this node in the membership topics. Required.
	NodeName string
	// Store holds the devices, their models and the twins. Required.
	Store *store.DB
	// Outbox receives the DeviceStatus messages. Required.
	Outbox Outbox
	// Bus is the MQTT broker. Required.
	Bus Bus
	// Notify wakes the upstream sender after an enqueue. nil: nobody to wake.
	Notify func()
	// OnExpectedChange is called after a device's expected values changed (from the cloud
	// or over MQTT), outside the twin's locks; the DMI server pushes the device to its
	// mapper. nil: nobody to tell.
	OnExpectedChange func(namespace, name string)
	// DefaultReportCycle is the upstream coalescing window of a device none of whose
	// properties sets reportCycle (≤ 0: DefaultReportCycle).
	DefaultReportCycle time.Duration
	// Logger receives structured logs naming the device. nil: slog.Default().
	Logger *slog.Logger
	// Now is the clock. nil: time.Now.
	Now func() time.Time
}

// device is one device as the twin knows it.
type device struct {
	spec *devicesv1beta1.Device
	twin store.DeviceTwin // as stored; Properties sorted by name
}

func (d *device) prop(name string) (int, bool) {
	return slices.BinarySearchFunc(d.twin.Properties, name, func(p store.TwinProperty, n string) int {
		return cmp.Compare(p.Name, n)
	})
}

// Twin is the device twin engine: it keeps each device's twin in the store, serves the
// MQTT topic API and the DMI reports, and sends each device's DeviceStatus upstream.
//
// The version rule. Each twin has expected_version and actual_version, each counting
// {cloud, edge} changes:
//   - a change of the Device's spec.properties[].desired.value in the store sets expected
//     and bumps expected_version.cloud;
//   - an MQTT twin/update with expected sets expected and bumps expected_version.edge;
//   - an MQTT twin/update with actual, or a DMI report, sets actual and bumps
//     actual_version.edge. The cloud never sets actual, so actual_version.cloud stays 0.
//
// Crossing updates resolve by who owns what: desired follows the cloud, reported follows
// the edge. An edge-set expected value stays in force until the cloud's desired value
// changes (compared with the desired value last seen, not with expected); then the cloud's
// value replaces it, whatever the edge versions say. A resend of an unchanged Device
// never undoes an edge-set value. Versions in MQTT requests are ignored.
type Twin struct {
	cfg Config
	log *slog.Logger
	// loaded is closed once the stored twins and the store's devices are loaded, so
	// Expected answers with what is really in force.
	loaded     chan struct{}
	loadedOnce sync.Once

	// mu guards devices and models and is held across each store write, so the store
	// and memory change in the same order. Never held while publishing or calling out.
	mu      sync.Mutex
	devices map[wire.Key]*device
	models  map[wire.Key]*devicesv1beta1.DeviceModel
	gen     int64 // the newest dirty generation handed out

	// fmu guards the flush schedule.
	fmu  sync.Mutex
	due  map[wire.Key]time.Time // devices whose status waits to go upstream
	last map[wire.Key]time.Time // when each device's status was last enqueued
	wake chan struct{}
}

// New checks cfg and returns a twin; [Twin.Run] starts it.
func New(cfg Config) (*Twin, error) {
	switch {
	case cfg.NodeName == "":
		return nil, errors.New("devicetwin: NodeName is required")
	case cfg.Store == nil:
		return nil, errors.New("devicetwin: Store is required")
	case cfg.Outbox == nil:
		return nil, errors.New("devicetwin: Outbox is required")
	case cfg.Bus == nil:
		return nil, errors.New("devicetwin: Bus is required")
	}
	if cfg.DefaultReportCycle <= 0 {
		cfg.DefaultReportCycle = DefaultReportCycle
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Twin{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.NodeName),
		loaded:  make(chan struct{}),
		devices: map[wire.Key]*device{},
		models:  map[wire.Key]*devicesv1beta1.DeviceModel{},
		due:     map[wire.Key]time.Time{},
		last:    map[wire.Key]time.Time{},
		wake:    make(chan struct{}, 1),
	}, nil
}

// Run loads the stored twins, reconciles them with the store's devices, sends upstream
// the status of every device whose last change did not go out before a restart,
// subscribes to the MQTT topics and follows the store's changes until ctx ends. Every
// goroutine it starts has ended when it returns.
func (t *Twin) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	stored, err := t.cfg.Store.Twins(ctx)
	if err != nil {
		return fmt.Errorf("devicetwin: loading twins: %w", err)
	}
	t.mu.Lock()
	for _, dt := range stored {
		t.devices[dt.Device] = &device{twin: dt}
		t.gen = max(t.gen, dt.Dirty)
	}
	t.mu.Unlock()

	rev, err := t.resync(ctx)
	if err != nil {
		return err
	}
	t.loadedOnce.Do(func() { close(t.loaded) })
	t.mu.Lock()
	for k, d := range t.devices {
		if d.twin.Dirty != 0 {
			t.schedule(k, d.spec, true)
		}
	}
	t.mu.Unlock()

	wg.Go(func() { t.flusher(ctx) })

	unsub, err := t.subscribe(ctx)
	defer func() {
		for _, u := range unsub {
			u()
		}
	}()
	if err != nil {
		return err
	}

	return t.cfg.Store.Follow(ctx, rev, t.resync, func(ev store.Event) { t.handle(ctx, ev) }, t.log)
}

// handle applies one store change of a device or model.
func (t *Twin) handle(ctx context.Context, ev store.Event) {
	switch ev.Object.Key.Type {
	case wire.TypeDeviceModel:
		if ev.Type == store.Deleted {
			t.removeModel(ctx, ev.Object.Key)
		} else {
			t.applyModel(ctx, ev.Object)
		}
	case wire.TypeDevice:
		if ev.Type == store.Deleted {
			t.removeDevice(ctx, ev.Object.Key, ev.Object.UID)
		} else {
			t.applyDevice(ctx, ev.Object)
		}
	}
}

// resync lists models and devices, applies each and drops the twins of devices the store
// no longer holds (also those left by a crash between a device's delete and its twin's).
func (t *Twin) resync(ctx context.Context) (int64, error) {
	models, _, err := t.cfg.Store.List(ctx, wire.TypeDeviceModel, "")
	if err != nil {
		return 0, fmt.Errorf("devicetwin: list device models: %w", err)
	}
	devs, rev, err := t.cfg.Store.List(ctx, wire.TypeDevice, "")
	if err != nil {
		return 0, fmt.Errorf("devicetwin: list devices: %w", err)
	}
	// The two lists are two snapshots: a model changed between them arrives again in the
	// watch from rev, which is the devices' snapshot.
	t.mu.Lock()
	seenModel := map[wire.Key]bool{}
	for _, o := range models {
		seenModel[o.Key] = true
	}
	for k := range t.models {
		if !seenModel[k] {
			delete(t.models, k)
		}
	}
	t.mu.Unlock()
	for _, o := range models {
		t.applyModel(ctx, o)
	}
	seen := map[wire.Key]bool{}
	for _, o := range devs {
		seen[o.Key] = true
		t.applyDevice(ctx, o)
	}
	t.mu.Lock()
	var gone []wire.Key
	for k := range t.devices {
		if !seen[k] {
			gone = append(gone, k)
		}
	}
	t.mu.Unlock()
	for _, k := range gone {
		t.removeDevice(ctx, k, "")
	}
	return rev, nil
}

// modelKey is the key of d's model.
func modelKey(d *devicesv1beta1.Device) wire.Key {
	if d == nil || d.Spec.DeviceModelRef == nil || d.Spec.DeviceModelRef.Name == "" {
		return wire.Key{}
	}
	return wire.Key{Namespace: d.Namespace, Type: wire.TypeDeviceModel, Name: d.Spec.DeviceModelRef.Name}
}

// modelProp returns the model's description of property name, or nil.
func (t *Twin) modelProp(spec *devicesv1beta1.Device, name string) *devicesv1beta1.ModelProperty {
	m := t.models[modelKey(spec)]
	if m == nil {
		return nil
	}
	for i := range m.Spec.Properties {
		if m.Spec.Properties[i].Name == name {
			return &m.Spec.Properties[i]
		}
	}
	return nil
}

func (t *Twin) applyModel(ctx context.Context, o store.Object) {
	var m devicesv1beta1.DeviceModel
	if err := json.Unmarshal(o.Content, &m); err != nil {
		t.log.Error("devicetwin: undecodable device model in store", "model", o.Key.String(), "err", err)
		return
	}
	t.mu.Lock()
	t.models[o.Key] = &m
	var users []wire.Key
	for k, d := range t.devices {
		if d.spec != nil && modelKey(d.spec) == o.Key {
			users = append(users, k)
		}
	}
	t.mu.Unlock()
	// Property types may have changed: re-apply the devices that use the model.
	for _, k := range users {
		if obj, ok, err := t.cfg.Store.Get(ctx, k); err == nil && ok {
			t.applyDevice(ctx, obj)
		}
	}
}

func (t *Twin) removeModel(_ context.Context, k wire.Key) {
	t.mu.Lock()
	delete(t.models, k)
	t.mu.Unlock()
}

// events collects what a change publishes once the locks are released.
type events struct {
	msgs            []Message
	expectedChanged bool
	dirty           bool
	key             wire.Key
}

// applyDevice makes the twin follow the Device in the store: its properties, their
// types and the cloud's desired values.
func (t *Twin) applyDevice(ctx context.Context, o store.Object) {
	var spec devicesv1beta1.Device
	if err := json.Unmarshal(o.Content, &spec); err != nil {
		t.log.Error("devicetwin: undecodable device in store", "device", o.Key.String(), "err", err)
		return
	}
	spec.Namespace, spec.Name = o.Key.Namespace, o.Key.Name
	log := t.log.With("device", o.Key.Namespace+"/"+o.Key.Name)
	now := t.cfg.Now()

	var ev events
	ev.key = o.Key
	t.mu.Lock()
	old := t.devices[o.Key]
	// A twin loaded from the store at start is not a new member.
	added := old == nil
	if old != nil && old.twin.UID != o.UID {
		// A new incarnation of the name: the old twin is not its twin.
		log.Info("devicetwin: device re-created; starting a new twin", "oldUID", old.twin.UID, "uid", o.UID)
		if err := t.cfg.Store.DeleteTwin(ctx, o.Key); err != nil {
			t.mu.Unlock()
			log.Error("devicetwin: dropping the old twin", "err", err)
			return
		}
		delete(t.devices, o.Key)
		if old.spec != nil {
			ev.msgs = append(ev.msgs, t.membershipUpdated(nil, []msgDevice{{ID: deviceID(o.Key), Name: o.Key.Name}}))
		}
		old, added = nil, true
	}
	next := store.DeviceTwin{Device: o.Key, UID: o.UID, State: "unknown"}
	if old != nil {
		next = old.twin
		next.Properties = nil
	}
	var changed []string
	var lastOf = map[string]*msgTwin{}
	seen := map[string]bool{}
	for _, p := range spec.Spec.Properties {
		if p.Name == "" || seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		tp := store.TwinProperty{Name: p.Name}
		if old != nil {
			if i, ok := old.prop(p.Name); ok {
				tp = old.twin.Properties[i]
			}
		}
		before := tp
		mp := t.modelProp(&spec, p.Name)
		if mp != nil {
			tp.Type = string(mp.Type)
		}
		var desired *store.TwinValue
		if p.Desired != nil && p.Desired.Value != "" {
			desired = &store.TwinValue{Value: p.Desired.Value, Metadata: maps.Clone(p.Desired.Metadata)}
		}
		if !sameValue(desired, tp.CloudDesired) {
			tp.CloudDesired = desired
			tp.Expected = nil
			if desired != nil {
				if mp != nil {
					if err := checkValue(mp.Type, desired.Value); err != nil {
						// The cloud is the authority on desired values; say so, but follow it.
						log.Warn("devicetwin: desired value does not fit the property type", "property", p.Name, "err", err)
					}
				}
				md := maps.Clone(desired.Metadata)
				if md == nil {
					md = map[string]string{}
				}
				md["timestamp"] = strconv.FormatInt(now.UnixMilli(), 10)
				tp.Expected = &store.TwinValue{Value: desired.Value, Metadata: md}
			}
			tp.ExpectedVersion.Cloud++
			changed = append(changed, p.Name)
			lastOf[p.Name] = t.entry(&before)
		}
		next.Properties = append(next.Properties, tp)
	}
	slices.SortFunc(next.Properties, func(a, b store.TwinProperty) int { return cmp.Compare(a.Name, b.Name) })

	if old == nil || !equalTwin(old.twin, next) {
		if err := t.cfg.Store.PutTwin(ctx, next); err != nil {
			t.mu.Unlock()
			log.Error("devicetwin: storing twin", "err", err)
			return
		}
	}
	d := &device{spec: &spec, twin: next}
	t.devices[o.Key] = d
	if added {
		ev.msgs = append(ev.msgs, t.membershipUpdated([]msgDevice{t.describe(d)}, nil))
	}
	if len(changed) > 0 {
		ev.expectedChanged = true
		ev.msgs = append(ev.msgs, t.deltaAndDocument(d, changed, lastOf)...)
	}
	t.mu.Unlock()
	t.emit(ctx, ev)
}

// removeDevice drops the twin of a device the store no longer holds. uid, when set,
// must be the twin's: a delete of an older incarnation leaves the new one alone.
func (t *Twin) removeDevice(ctx context.Context, k wire.Key, uid string) {
	t.mu.Lock()
	d := t.devices[k]
	if d == nil || (uid != "" && d.twin.UID != uid) {
		t.mu.Unlock()
		return
	}
	if err := t.cfg.Store.DeleteTwin(ctx, k); err != nil {
		t.mu.Unlock()
		t.log.Error("devicetwin: dropping twin of removed device", "device", deviceID(k), "err", err)
		return
	}
	delete(t.devices, k)
	var ev events
	if d.spec != nil {
		ev.msgs = append(ev.msgs, t.membershipUpdated(nil, []msgDevice{{ID: deviceID(k), Name: k.Name}}))
	}
	t.mu.Unlock()
	t.fmu.Lock()
	delete(t.due, k)
	delete(t.last, k)
	t.fmu.Unlock()
	t.emit(ctx, ev)
}

// emit publishes ev's messages, tells OnExpectedChange and schedules the upstream status.
// Called without locks.
func (t *Twin) emit(ctx context.Context, ev events) {
	for _, m := range ev.msgs {
		if err := t.cfg.Bus.Publish(ctx, m); err != nil && ctx.Err() == nil {
			t.log.Warn("devicetwin: publishing", "topic", m.Topic, "err", err)
		}
	}
	if ev.expectedChanged && t.cfg.OnExpectedChange != nil {
		t.cfg.OnExpectedChange(ev.key.Namespace, ev.key.Name)
	}
	if ev.dirty {
		t.mu.Lock()
		if d := t.devices[ev.key]; d != nil {
			t.schedule(ev.key, d.spec, false)
		}
		t.mu.Unlock()
	}
}

func sameValue(a, b *store.TwinValue) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Value == b.Value
}

func equalTwin(a, b store.DeviceTwin) bool {
	if a.Device != b.Device || a.UID != b.UID || a.State != b.State || a.LastOnlineTime != b.LastOnlineTime ||
		a.Dirty != b.Dirty || len(a.Properties) != len(b.Properties) {
		return false
	}
	for i := range a.Properties {
		p, q := a.Properties[i], b.Properties[i]
		if p.Name != q.Name || p.Type != q.Type || p.Optional != q.Optional ||
			p.ExpectedVersion != q.ExpectedVersion || p.ActualVersion != q.ActualVersion ||
			!equalStored(p.Expected, q.Expected) || !equalStored(p.Actual, q.Actual) ||
			!equalStored(p.ObservedDesired, q.ObservedDesired) || !equalStored(p.CloudDesired, q.CloudDesired) {
			return false
		}
	}
	return true
}

func equalStored(a, b *store.TwinValue) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Value == b.Value && maps.Equal(a.Metadata, b.Metadata)
}

// Loaded is closed once Run has loaded the stored twins and the store's devices. Until then
// Expected knows no device: a DMI server answering mappers before it would hand them the
// cloud's desired values and undo values set at the edge.
func (t *Twin) Loaded() <-chan struct{} { return t.loaded }

// Expected returns the desired values in force now, keyed by property, or nil for an
// unknown device.
func (t *Twin) Expected(namespace, name string) map[string]Value {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devices[wire.Key{Namespace: namespace, Type: wire.TypeDevice, Name: name}]
	if d == nil || d.spec == nil {
		return nil
	}
	out := map[string]Value{}
	for _, p := range d.twin.Properties {
		if p.Expected != nil {
			out[p.Name] = Value{Value: p.Expected.Value, Metadata: maps.Clone(p.Expected.Metadata)}
		}
	}
	return out
}
