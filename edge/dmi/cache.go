package dmi

import (
	"context"
	"encoding/json"
	"fmt"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// objKey names a Device or DeviceModel.
type objKey struct{ Namespace, Name string }

func (k objKey) String() string { return k.Namespace + "/" + k.Name }

func (k objKey) less(o objKey) bool {
	if k.Namespace != o.Namespace {
		return k.Namespace < o.Namespace
	}
	return k.Name < o.Name
}

// modelOf returns the key of d's model; ok is false when d names none.
func modelOf(d *devicesv1beta1.Device) (objKey, bool) {
	if d.Spec.DeviceModelRef == nil || d.Spec.DeviceModelRef.Name == "" {
		return objKey{}, false
	}
	return objKey{d.Namespace, d.Spec.DeviceModelRef.Name}, true
}

func protocolOf(d *devicesv1beta1.Device) string {
	if d.Spec.Protocol == nil {
		return ""
	}
	return d.Spec.Protocol.ProtocolName
}

// The cache holds the store's Devices and DeviceModels decoded. Cached objects are never
// modified, only replaced, so a pointer read under s.mu may be used after unlocking.

// relist replaces the cache with the store's contents and marks everything that changed
// dirty for every mapper. It returns the revision to watch from.
func (s *Server) relist(ctx context.Context) (int64, error) {
	devObjs, rev, err := s.store.List(ctx, wire.TypeDevice, "")
	if err != nil {
		return 0, fmt.Errorf("dmi: list devices: %w", err)
	}
	// Models listed after devices may be newer than the device snapshot; the watch from
	// the devices' revision repeats those changes, which is harmless.
	modelObjs, _, err := s.store.List(ctx, wire.TypeDeviceModel, "")
	if err != nil {
		return 0, fmt.Errorf("dmi: list device models: %w", err)
	}
	devices := map[objKey]*devicesv1beta1.Device{}
	for _, o := range devObjs {
		if d := s.decodeDevice(o); d != nil {
			devices[objKey{d.Namespace, d.Name}] = d
		}
	}
	models := map[objKey]*devicesv1beta1.DeviceModel{}
	for _, o := range modelObjs {
		if m := s.decodeModel(o); m != nil {
			models[objKey{m.Namespace, m.Name}] = m
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	oldDevices, oldModels := s.devices, s.models
	s.devices, s.models = devices, models
	// Removed keys are marked too: their mappers must drop them.
	for _, set := range []map[objKey]*devicesv1beta1.Device{oldDevices, devices} {
		for k := range set {
			s.markDeviceLocked(k)
		}
	}
	for _, set := range []map[objKey]*devicesv1beta1.DeviceModel{oldModels, models} {
		for k := range set {
			s.markModelLocked(k)
		}
	}
	return rev, nil
}

// follow applies store changes to the cache until ctx ends, listing again when the watch
// falls behind.
func (s *Server) follow(ctx context.Context, rev int64) error {
	return s.store.Follow(ctx, rev, s.relist, s.apply, s.log)
}

// apply updates the cache for one store event and marks what it touches dirty.
func (s *Server) apply(ev store.Event) {
	k := objKey{ev.Object.Key.Namespace, ev.Object.Key.Name}
	switch ev.Object.Key.Type {
	case wire.TypeDevice:
		var d *devicesv1beta1.Device
		if ev.Type != store.Deleted {
			if d = s.decodeDevice(ev.Object); d == nil {
				return
			}
		}
		s.mu.Lock()
		if d == nil {
			delete(s.devices, k)
		} else {
			s.devices[k] = d
		}
		s.markDeviceLocked(k)
		s.mu.Unlock()
	case wire.TypeDeviceModel:
		var m *devicesv1beta1.DeviceModel
		if ev.Type != store.Deleted {
			if m = s.decodeModel(ev.Object); m == nil {
				return
			}
		}
		s.mu.Lock()
		if m == nil {
			delete(s.models, k)
		} else {
			s.models[k] = m
		}
		s.markModelLocked(k)
		s.mu.Unlock()
	}
}

// decodeDevice returns the stored device, or nil (logged) if it cannot be used. The key is
// authoritative for namespace and name.
func (s *Server) decodeDevice(o store.Object) *devicesv1beta1.Device {
	d := &devicesv1beta1.Device{}
	if err := json.Unmarshal(o.Content, d); err != nil {
		s.log.Error("undecodable device in store; not pushed to mappers", "device", o.Key.String(), "err", err)
		return nil
	}
	d.Namespace, d.Name = o.Key.Namespace, o.Key.Name
	return d
}

func (s *Server) decodeModel(o store.Object) *devicesv1beta1.DeviceModel {
	m := &devicesv1beta1.DeviceModel{}
	if err := json.Unmarshal(o.Content, m); err != nil {
		s.log.Error("undecodable device model in store; not pushed to mappers", "model", o.Key.String(), "err", err)
		return nil
	}
	m.Namespace, m.Name = o.Key.Namespace, o.Key.Name
	return m
}

// Resync pushes the device's current state to its mapper again: call it when the desired
// values in force (Twins.Expected) change.
func (s *Server) Resync(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markDeviceLocked(objKey{namespace, name})
}

// markDeviceLocked marks a device dirty for every mapper: the one that serves it now and
// any that may have it from before (its protocol may have changed).
func (s *Server) markDeviceLocked(k objKey) {
	for _, m := range s.mappers {
		m.markDevice(k)
	}
}

// markModelLocked marks a model dirty for every mapper, together with the devices that use
// it (a device waits for its model before it is pushed).
func (s *Server) markModelLocked(k objKey) {
	for _, m := range s.mappers {
		m.markModel(k)
	}
	for dk, d := range s.devices {
		if mk, ok := modelOf(d); ok && mk == k {
			s.markDeviceLocked(dk)
		}
	}
}
