package devicetwin

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Upstream. After a change of a reported value, an observedDesired value or the state,
// the device's whole DeviceStatus goes to the outbox (class Coalesced: only the newest
// per device waits there). Per device at most one enqueue per window: half the smallest
// reportCycle of its reported properties (and of stateReport), or of DefaultReportCycle
// when none sets one, at most a minute; the newest status is always sent at the window's
// end. Half, because the mapper already reports once per cycle: a full-cycle window here
// would add up to a cycle of delay whenever the two clocks drift, and a reading must reach
// the cloud within two cycles.
// The twin is stored, marked dirty, before an enqueue is scheduled, and the mark is
// cleared only after the enqueue; Run enqueues every device still marked at start, so a
// restart loses no newest value.
//
// Only properties with reportToCloud: true are in status.twins (KubeEdge v1beta1: the
// property's reportToCloud decides whether its twin goes to the cloud). state and
// lastOnlineTime are always sent.

// period is the coalescing window of a device.
func (t *Twin) period(spec *devicesv1beta1.Device) time.Duration {
	var p time.Duration
	consider := func(ms int64) {
		if ms > 0 {
			d := time.Duration(min(ms, int64(maxReportCycle/time.Millisecond))) * time.Millisecond
			if p == 0 || d < p {
				p = d
			}
		}
	}
	if spec != nil {
		for _, prop := range spec.Spec.Properties {
			if prop.ReportToCloud {
				consider(prop.ReportCycle)
			}
		}
		if spec.Spec.StateReport != nil {
			consider(spec.Spec.StateReport.ReportCycle)
		}
	}
	if p == 0 {
		p = t.cfg.DefaultReportCycle
	}
	return min(p, maxReportCycle)
}

// schedule plans the upstream status of k: at once when immediate or when the device's
// window has passed since its last enqueue, else at the window's end. Called with mu held.
func (t *Twin) schedule(k wire.Key, spec *devicesv1beta1.Device, immediate bool) {
	now := time.Now()
	at := now
	t.fmu.Lock()
	if _, ok := t.due[k]; !ok {
		if last, ok := t.last[k]; ok && !immediate {
			if end := last.Add(t.period(spec) / 2); end.After(now) {
				at = end
			}
		}
		t.due[k] = at
	}
	t.fmu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// flusher enqueues the statuses whose time has come, until ctx ends.
func (t *Twin) flusher(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var ready []wire.Key
		var next time.Time
		t.fmu.Lock()
		for k, at := range t.due {
			if !at.After(now) {
				ready = append(ready, k)
				delete(t.due, k)
				t.last[k] = now
			} else if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		t.fmu.Unlock()
		for _, k := range ready {
			t.flush(ctx, k)
		}
		if ctx.Err() != nil {
			return
		}
		if len(ready) > 0 {
			continue // a flush may have rescheduled; look again
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = time.Until(next)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.wake:
		case <-timer.C:
		}
	}
}

// flush enqueues k's status if it has changes not yet sent.
func (t *Twin) flush(ctx context.Context, k wire.Key) {
	t.mu.Lock()
	d := t.devices[k]
	if d == nil || d.spec == nil || d.twin.Dirty == 0 {
		t.mu.Unlock()
		return
	}
	gen := d.twin.Dirty
	msg, err := t.statusMessage(d)
	t.mu.Unlock()
	log := t.log.With("device", deviceID(k))
	if err != nil {
		log.Error("devicetwin: encoding device status", "err", err)
		return
	}
	if _, err := t.cfg.Outbox.Enqueue(ctx, msg, store.Coalesced); err != nil {
		if ctx.Err() != nil {
			return
		}
		log.Warn("devicetwin: queueing device status; retrying", "err", err, "in", retryDelay)
		t.fmu.Lock()
		if _, ok := t.due[k]; !ok {
			t.due[k] = time.Now().Add(retryDelay)
		}
		t.fmu.Unlock()
		return
	}
	if t.cfg.Notify != nil {
		t.cfg.Notify()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// A newer change keeps the mark: its own flush is scheduled.
	if d := t.devices[k]; d != nil && d.twin.Dirty == gen {
		ok, err := t.cfg.Store.ClearTwinDirty(ctx, k, gen)
		if err != nil {
			// The status is queued; at worst a restart sends it once more.
			log.Warn("devicetwin: clearing the dirty mark", "err", err)
			return
		}
		if ok {
			d.twin.Dirty = 0
		}
	}
}

// statusMessage is d's DeviceStatus as the upstream message. Called with mu held.
func (t *Twin) statusMessage(d *device) (*wire.Message, error) {
	k := d.twin.Device
	controller := true
	ds := devicesv1beta1.DeviceStatus{
		TypeMeta: metav1.TypeMeta{APIVersion: devicesv1beta1.SchemeGroupVersion.String(), Kind: "DeviceStatus"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: k.Namespace,
			Name:      k.Name,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: devicesv1beta1.SchemeGroupVersion.String(), Kind: "Device",
				// The uid the twin was made for: that of the Device in the store.
				Name: k.Name, UID: types.UID(d.twin.UID), Controller: &controller,
			}},
		},
		Status: devicesv1beta1.DeviceStatusStatus{
			State:          devicesv1beta1.DeviceState(d.twin.State),
			LastOnlineTime: d.twin.LastOnlineTime,
		},
	}
	for _, p := range d.spec.Spec.Properties {
		if !p.ReportToCloud {
			continue
		}
		i, ok := d.prop(p.Name)
		if !ok {
			continue
		}
		tp := d.twin.Properties[i]
		if tp.Actual == nil && tp.ObservedDesired == nil {
			continue
		}
		tw := devicesv1beta1.Twin{PropertyName: p.Name}
		if tp.Actual != nil {
			md := maps.Clone(tp.Actual.Metadata)
			if md == nil {
				md = map[string]string{}
			}
			if _, ok := md["type"]; !ok && tp.Type != "" {
				md["type"] = typeName(devicesv1beta1.PropertyType(tp.Type))
			}
			tw.Reported = &devicesv1beta1.TwinProperty{Value: tp.Actual.Value, Metadata: md}
		}
		if tp.ObservedDesired != nil {
			tw.ObservedDesired = &devicesv1beta1.TwinProperty{Value: tp.ObservedDesired.Value, Metadata: maps.Clone(tp.ObservedDesired.Metadata)}
		}
		ds.Status.Twins = append(ds.Status.Twins, tw)
	}
	content, err := json.Marshal(&ds)
	if err != nil {
		return nil, fmt.Errorf("devicetwin: encoding status of %s: %w", deviceID(k), err)
	}
	key := wire.Key{Namespace: k.Namespace, Type: wire.TypeDeviceStatus, Name: k.Name}
	msg := wire.NewMessage(wire.Route{Source: Source, Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: key.String()}, content)
	msg.Header.Timestamp = t.cfg.Now().UnixMilli()
	return msg, nil
}
