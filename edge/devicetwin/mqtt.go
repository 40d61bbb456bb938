package devicetwin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// The MQTT topics (spec §5). A device id is <namespace>/<name>, two topic levels, so the
// device filters have two single-level wildcards.
const (
	devicePrefix      = "$hw/events/device/"
	nodePrefix        = "$hw/events/node/"
	filterTwinUpdate  = devicePrefix + "+/+/twin/update"
	filterTwinGet     = devicePrefix + "+/+/twin/get"
	filterStateUpdate = devicePrefix + "+/+/state/update"
	resultSuffix      = "/result"
	// qos of everything the twin publishes: at least once, so a mapper does not miss a
	// desired value while the broker is busy.
	qos = 1
)

func deviceID(k wire.Key) string { return k.Namespace + "/" + k.Name }

func deviceTopic(k wire.Key, suffix string) string { return devicePrefix + deviceID(k) + "/" + suffix }

func (t *Twin) membershipTopic(suffix string) string {
	return nodePrefix + t.cfg.NodeName + "/membership/" + suffix
}

// topicDevice reads the device key out of $hw/events/device/<ns>/<name>/<suffix>.
func topicDevice(topic, suffix string) (wire.Key, error) {
	rest, ok := strings.CutPrefix(topic, devicePrefix)
	if ok {
		rest, ok = strings.CutSuffix(rest, "/"+suffix)
	}
	if !ok {
		return wire.Key{}, fmt.Errorf("topic %q is not %s<namespace>/<name>/%s", shorten(topic), devicePrefix, suffix)
	}
	ns, name, ok := strings.Cut(rest, "/")
	k := wire.Key{Namespace: ns, Type: wire.TypeDevice, Name: name}
	if !ok || ns == "" || name == "" || k.Validate() != nil {
		return wire.Key{}, fmt.Errorf("%q is not a device id <namespace>/<name>", shorten(rest))
	}
	return k, nil
}

// subscribe subscribes the MQTT API's topics; the returned functions unsubscribe.
func (t *Twin) subscribe(_ context.Context) ([]func(), error) {
	subs := []struct {
		filter string
		h      Handler
	}{
		{filterTwinUpdate, t.handleTwinUpdate},
		{filterTwinGet, t.handleTwinGet},
		{filterStateUpdate, t.handleStateUpdate},
		{t.membershipTopic("get"), t.handleMembershipGet},
	}
	var unsub []func()
	for _, s := range subs {
		u, err := t.cfg.Bus.Subscribe(s.filter, s.h)
		if err != nil {
			return unsub, fmt.Errorf("devicetwin: subscribing %s: %w", s.filter, err)
		}
		unsub = append(unsub, u)
	}
	return unsub, nil
}

func (t *Twin) base(eventID string) baseMessage {
	if eventID == "" {
		eventID = wire.NewID()
	}
	return baseMessage{EventID: eventID, Timestamp: t.cfg.Now().UnixMilli()}
}

func (t *Twin) message(topic string, v any) Message {
	b, err := json.Marshal(v)
	if err != nil { // our own types of strings and numbers: not expected to happen
		t.log.Error("devicetwin: encoding MQTT payload", "topic", topic, "err", err)
		b = []byte("{}")
	}
	return Message{Topic: topic, Payload: b, QoS: qos}
}

// reply publishes the answer to a request: msgs, or the error result on topic.
func (t *Twin) reply(ctx context.Context, topic, eventID string, ev events, rerr *requestError) {
	if rerr != nil {
		t.log.Debug("devicetwin: refused MQTT request", "topic", shorten(topic), "code", rerr.code, "reason", rerr.reason)
		ev = events{msgs: []Message{t.message(topic, errorResult{baseMessage: t.base(eventID), Code: rerr.code, Reason: rerr.reason})}}
	}
	t.emit(ctx, ev)
}

func (t *Twin) handleTwinUpdate(ctx context.Context, m Message) {
	req, rerr := decodeTwinUpdate(m.Payload)
	var ev events
	if rerr == nil {
		k, err := topicDevice(m.Topic, "twin/update")
		if err != nil {
			rerr = badRequest("%v", err)
		} else {
			ev, rerr = t.twinUpdate(ctx, k, req)
		}
	}
	t.reply(ctx, m.Topic+resultSuffix, req.EventID, ev, rerr)
}

func (t *Twin) handleTwinGet(ctx context.Context, m Message) {
	req, rerr := decodeBase(m.Payload)
	var ev events
	if rerr == nil {
		k, err := topicDevice(m.Topic, "twin/get")
		if err != nil {
			rerr = badRequest("%v", err)
		} else {
			t.mu.Lock()
			d := t.devices[k]
			if d == nil || d.spec == nil {
				rerr = notFound(k)
			} else {
				ev.msgs = []Message{t.message(m.Topic+resultSuffix, twinMessage{baseMessage: t.base(req.EventID), Twin: t.entries(d, nil)})}
			}
			t.mu.Unlock()
		}
	}
	t.reply(ctx, m.Topic+resultSuffix, req.EventID, ev, rerr)
}

func (t *Twin) handleStateUpdate(ctx context.Context, m Message) {
	req, rerr := decodeState(m.Payload)
	var ev events
	if rerr == nil {
		k, err := topicDevice(m.Topic, "state/update")
		if err != nil {
			rerr = badRequest("%v", err)
		} else {
			ev, rerr = t.stateUpdate(ctx, k, req.State, &req.EventID)
		}
	}
	t.reply(ctx, m.Topic+resultSuffix, req.EventID, ev, rerr)
}

func (t *Twin) handleMembershipGet(ctx context.Context, m Message) {
	req, rerr := decodeBase(m.Payload)
	var ev events
	if rerr == nil {
		res := membershipResult{baseMessage: t.base(req.EventID), Devices: []msgDevice{}}
		t.mu.Lock()
		for _, d := range t.devices {
			if d.spec != nil {
				res.Devices = append(res.Devices, t.describe(d))
			}
		}
		t.mu.Unlock()
		slices.SortFunc(res.Devices, func(a, b msgDevice) int { return cmp.Compare(a.ID, b.ID) })
		ev.msgs = []Message{t.message(m.Topic+resultSuffix, res)}
	}
	t.reply(ctx, m.Topic+resultSuffix, req.EventID, ev, rerr)
}

func notFound(k wire.Key) *requestError {
	return &requestError{code: codeNotFound, reason: fmt.Sprintf("device %s is not on this node", deviceID(k))}
}

// twinUpdate applies an MQTT twin/update: all of it, or, on any invalid entry, none.
func (t *Twin) twinUpdate(ctx context.Context, k wire.Key, req *twinMessage) (events, *requestError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devices[k]
	if d == nil || d.spec == nil {
		return events{}, notFound(k)
	}
	names := slices.Sorted(maps.Keys(req.Twin))
	for _, name := range names {
		i, ok := d.prop(name)
		if !ok {
			return events{}, badRequest("device %s has no property %q", deviceID(k), shorten(name))
		}
		typ := devicesv1beta1.PropertyType(d.twin.Properties[i].Type)
		mp := t.modelProp(d.spec, name)
		e := req.Twin[name]
		if e.Expected != nil {
			if mp != nil && mp.AccessMode == devicesv1beta1.AccessModeReadOnly {
				return events{}, badRequest("property %q is ReadOnly: it takes no expected value", name)
			}
			if err := checkValue(typ, *e.Expected.Value); err != nil {
				return events{}, badRequest("property %q: expected: %v", name, err)
			}
			if err := checkRange(mp, *e.Expected.Value); err != nil {
				return events{}, badRequest("property %q: expected: %v", name, err)
			}
		}
		if e.Actual != nil {
			if err := checkValue(typ, *e.Actual.Value); err != nil {
				return events{}, badRequest("property %q: actual: %v", name, err)
			}
		}
	}

	next := d.twin
	next.Properties = slices.Clone(d.twin.Properties)
	stamp := map[string]string{"timestamp": strconv.FormatInt(t.cfg.Now().UnixMilli(), 10)}
	lastOf := map[string]*msgTwin{}
	var ev events
	ev.key = k
	for _, name := range names {
		i, _ := d.prop(name)
		tp := &next.Properties[i]
		lastOf[name] = t.entry(tp)
		e := req.Twin[name]
		if e.Expected != nil {
			tp.Expected = &store.TwinValue{Value: *e.Expected.Value, Metadata: maps.Clone(stamp)}
			tp.ExpectedVersion.Edge++
			ev.expectedChanged = true
		}
		if e.Actual != nil {
			tp.Actual = &store.TwinValue{Value: *e.Actual.Value, Metadata: maps.Clone(stamp)}
			tp.ActualVersion.Edge++
			ev.dirty = true
		}
	}
	if ev.dirty {
		t.gen++
		next.Dirty = t.gen
	}
	if err := t.cfg.Store.PutTwin(ctx, next); err != nil {
		t.log.Error("devicetwin: storing twin update", "device", deviceID(k), "err", err)
		return events{}, &requestError{code: codeInternal, reason: "storing the twin failed"}
	}
	nd := &device{spec: d.spec, twin: next}
	t.devices[k] = nd
	res := twinMessage{baseMessage: t.base(req.EventID), Twin: t.entries(nd, names)}
	ev.msgs = append([]Message{t.message(deviceTopic(k, "twin/update/result"), res)}, t.deltaAndDocument(nd, names, lastOf)...)
	return ev, nil
}

// stateUpdate records a device's state; eventID, when not nil, asks for the
// state/update/result answer.
func (t *Twin) stateUpdate(ctx context.Context, k wire.Key, state string, eventID *string) (events, *requestError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devices[k]
	if d == nil || d.spec == nil {
		return events{}, notFound(k)
	}
	ev := events{key: k}
	next := d.twin
	if state != d.twin.State || onlineState(state) {
		next.State = state
		if onlineState(state) {
			next.LastOnlineTime = t.cfg.Now().UTC().Format("2006-01-02T15:04:05Z07:00")
		}
		t.gen++
		next.Dirty = t.gen
		if err := t.cfg.Store.PutTwin(ctx, next); err != nil {
			t.log.Error("devicetwin: storing device state", "device", deviceID(k), "err", err)
			return events{}, &requestError{code: codeInternal, reason: "storing the state failed"}
		}
		t.devices[k] = &device{spec: d.spec, twin: next}
		ev.dirty = true
	}
	if eventID != nil {
		ev.msgs = append(ev.msgs, t.message(deviceTopic(k, "state/update/result"), stateResult{
			baseMessage: t.base(*eventID),
			Device:      msgDevice{Name: k.Name, State: next.State, LastOnline: next.LastOnlineTime},
		}))
	}
	if state != d.twin.State {
		ev.msgs = append(ev.msgs, t.message(deviceTopic(k, "updated"), deviceUpdated{baseMessage: t.base(""), State: state}))
	}
	return ev, nil
}

// entry is tp as an MQTT twin entry.
func (t *Twin) entry(tp *store.TwinProperty) *msgTwin {
	opt := tp.Optional
	return &msgTwin{
		Expected:        msgValueOf(tp.Expected),
		Actual:          msgValueOf(tp.Actual),
		Optional:        &opt,
		Metadata:        &typeMetadata{Type: typeName(devicesv1beta1.PropertyType(tp.Type))},
		ExpectedVersion: &msgVersion{Cloud: tp.ExpectedVersion.Cloud, Edge: tp.ExpectedVersion.Edge},
		ActualVersion:   &msgVersion{Cloud: tp.ActualVersion.Cloud, Edge: tp.ActualVersion.Edge},
	}
}

func msgValueOf(v *store.TwinValue) *msgValue {
	if v == nil {
		return nil
	}
	s := v.Value
	mv := &msgValue{Value: &s}
	if ts, err := strconv.ParseInt(v.Metadata["timestamp"], 10, 64); err == nil {
		mv.Metadata = &valueMetadata{Timestamp: ts}
	}
	return mv
}

// entries returns d's twin entries for names (all if nil).
func (t *Twin) entries(d *device, names []string) map[string]*msgTwin {
	out := map[string]*msgTwin{}
	for i := range d.twin.Properties {
		tp := &d.twin.Properties[i]
		if names == nil || slices.Contains(names, tp.Name) {
			out[tp.Name] = t.entry(tp)
		}
	}
	return out
}

// delta returns expected values that differ from the actual ones, compared by type.
func delta(d *device) map[string]string {
	out := map[string]string{}
	for _, tp := range d.twin.Properties {
		if tp.Expected == nil {
			continue
		}
		if tp.Actual == nil || !equalValues(devicesv1beta1.PropertyType(tp.Type), tp.Expected.Value, tp.Actual.Value) {
			out[tp.Name] = tp.Expected.Value
		}
	}
	return out
}

// deltaAndDocument returns the twin/update/delta message (if any expected value differs
// from its actual one) and the twin/update/document message for the changed properties,
// whose entries before the change are in lastOf.
func (t *Twin) deltaAndDocument(d *device, changed []string, lastOf map[string]*msgTwin) []Message {
	k := d.twin.Device
	var msgs []Message
	if dl := delta(d); len(dl) > 0 {
		msgs = append(msgs, t.message(deviceTopic(k, "twin/update/delta"), deltaMessage{baseMessage: t.base(""), Twin: t.entries(d, nil), Delta: dl}))
	}
	doc := documentMessage{baseMessage: t.base(""), Twin: map[string]*docEntry{}}
	for _, name := range changed {
		if i, ok := d.prop(name); ok {
			doc.Twin[name] = &docEntry{Last: lastOf[name], Current: t.entry(&d.twin.Properties[i])}
		}
	}
	return append(msgs, t.message(deviceTopic(k, "twin/update/document"), doc))
}

// describe is d as membership messages list it.
func (t *Twin) describe(d *device) msgDevice {
	return msgDevice{
		ID:         deviceID(d.twin.Device),
		Name:       d.twin.Device.Name,
		State:      d.twin.State,
		LastOnline: d.twin.LastOnlineTime,
		Twin:       t.entries(d, nil),
	}
}

func (t *Twin) membershipUpdated(added, removed []msgDevice) Message {
	return t.message(t.membershipTopic("updated"), membershipUpdated{
		baseMessage:    t.base(""),
		AddedDevices:   append([]msgDevice{}, added...),
		RemovedDevices: append([]msgDevice{}, removed...),
	})
}

// Errors of the DMI-facing methods, for mapping to gRPC codes.
var (
	// ErrNotFound: the device is not on this node, or has no such property.
	ErrNotFound = errors.New("devicetwin: not found")
	// ErrInvalid: a value or state the twin refuses.
	ErrInvalid = errors.New("devicetwin: invalid")
)

func asError(rerr *requestError) error {
	switch rerr.code {
	case codeNotFound:
		return fmt.Errorf("%w: %s", ErrNotFound, rerr.reason)
	case codeBadRequest, codeTooLarge:
		return fmt.Errorf("%w: %s", ErrInvalid, rerr.reason)
	}
	return fmt.Errorf("devicetwin: %s", rerr.reason)
}
