package devicetwin

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

func dmiKey(namespace, name string) (wire.Key, error) {
	k := wire.Key{Namespace: namespace, Type: wire.TypeDevice, Name: name}
	if namespace == "" || name == "" || k.Validate() != nil {
		return wire.Key{}, fmt.Errorf("%w: %q/%q is not a device namespace and name", ErrInvalid, shorten(namespace), shorten(name))
	}
	return k, nil
}

// ReportTwins records what a mapper read from a device (Reported: the twin's actual
// value, bumping actual_version.edge) and the desired values it applied
// (ObservedDesired). The whole report is refused, and nothing stored, if the device is
// unknown (ErrNotFound), a property is unknown (ErrNotFound), or a value does not fit its
// property type or a metadata map is too large (ErrInvalid). A report that repeats the
// stored values changes nothing, so a mapper reporting every second does not write the
// disk every second.
func (t *Twin) ReportTwins(ctx context.Context, namespace, name string, reports []Report) error {
	k, err := dmiKey(namespace, name)
	if err != nil {
		return err
	}
	if len(reports) > maxProperties {
		return fmt.Errorf("%w: %d reports, at most %d", ErrInvalid, len(reports), maxProperties)
	}
	ev, rerr := t.reportTwins(ctx, k, reports)
	if rerr != nil {
		return asError(rerr)
	}
	t.emit(ctx, ev)
	return nil
}

func checkMetadata(md map[string]string) error {
	if len(md) > maxMetadata {
		return fmt.Errorf("%d metadata entries, at most %d", len(md), maxMetadata)
	}
	for k, v := range md {
		if len(k) > maxMetadataLen || len(v) > maxMetadataLen {
			return fmt.Errorf("metadata entry %q longer than %d bytes", shorten(k), maxMetadataLen)
		}
	}
	return nil
}

// stamped returns v as stored: a copy, with a timestamp (now) if the mapper gave none.
func stamped(v *Value, nowMilli int64) *store.TwinValue {
	md := maps.Clone(v.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	if _, ok := md["timestamp"]; !ok {
		md["timestamp"] = strconv.FormatInt(nowMilli, 10)
	}
	return &store.TwinValue{Value: v.Value, Metadata: md}
}

func (t *Twin) reportTwins(ctx context.Context, k wire.Key, reports []Report) (events, *requestError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devices[k]
	if d == nil || d.spec == nil {
		return events{}, notFound(k)
	}
	seen := map[string]bool{}
	for _, r := range reports {
		i, ok := d.prop(r.Property)
		if !ok {
			return events{}, &requestError{code: codeNotFound, reason: fmt.Sprintf("device %s has no property %q", deviceID(k), shorten(r.Property))}
		}
		if seen[r.Property] {
			return events{}, badRequest("property %q reported twice", r.Property)
		}
		seen[r.Property] = true
		typ := devicesv1beta1.PropertyType(d.twin.Properties[i].Type)
		for what, v := range map[string]*Value{"reported": r.Reported, "observedDesired": r.ObservedDesired} {
			if v == nil {
				continue
			}
			if err := checkValue(typ, v.Value); err != nil {
				return events{}, badRequest("property %q: %s: %v", r.Property, what, err)
			}
			if err := checkMetadata(v.Metadata); err != nil {
				return events{}, badRequest("property %q: %s: %v", r.Property, what, err)
			}
		}
	}

	now := t.cfg.Now().UnixMilli()
	next := d.twin
	next.Properties = slices.Clone(d.twin.Properties)
	lastOf := map[string]*msgTwin{}
	var changed []string
	for _, r := range reports {
		i, _ := d.prop(r.Property)
		tp := &next.Properties[i]
		before := t.entry(tp)
		actualChanged := r.Reported != nil && (tp.Actual == nil || tp.Actual.Value != r.Reported.Value)
		observedChanged := r.ObservedDesired != nil && (tp.ObservedDesired == nil || tp.ObservedDesired.Value != r.ObservedDesired.Value)
		if actualChanged {
			tp.Actual = stamped(r.Reported, now)
			tp.ActualVersion.Edge++
			changed = append(changed, r.Property)
			lastOf[r.Property] = before
		}
		if observedChanged {
			tp.ObservedDesired = stamped(r.ObservedDesired, now)
		}
	}
	if equalTwin(d.twin, next) {
		return events{}, nil
	}
	t.gen++
	next.Dirty = t.gen
	if err := t.cfg.Store.PutTwin(ctx, next); err != nil {
		t.log.Error("devicetwin: storing reported twins", "device", deviceID(k), "err", err)
		return events{}, &requestError{code: codeInternal, reason: "storing the twin failed: " + err.Error()}
	}
	nd := &device{spec: d.spec, twin: next}
	t.devices[k] = nd
	ev := events{key: k, dirty: true}
	if len(changed) > 0 {
		// Apps learn new readings from the document; the delta is for desired values.
		msgs := t.deltaAndDocument(nd, changed, lastOf)
		ev.msgs = msgs[len(msgs)-1:]
	}
	return ev, nil
}

// ReportState records a device's state as a mapper reports it over DMI. An unknown
// device fails with ErrNotFound, an unknown state with ErrInvalid.
func (t *Twin) ReportState(ctx context.Context, namespace, name, state string) error {
	k, err := dmiKey(namespace, name)
	if err != nil {
		return err
	}
	if !validState(state) {
		return fmt.Errorf("%w: state %q is not one of %v", ErrInvalid, shorten(state), states)
	}
	ev, rerr := t.stateUpdate(ctx, k, state, nil)
	if rerr != nil {
		return asError(rerr)
	}
	t.emit(ctx, ev)
	return nil
}
