package mapper

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/skerry-io/skerry/api/dmi/v1beta1"
)

// The DeviceMapperService methods the edge calls to push devices and models.

// RegisterDevice implements v1beta1.DeviceMapperServiceServer.
func (m *Mapper) RegisterDevice(_ context.Context, req *v1beta1.RegisterDeviceRequest) (*v1beta1.RegisterDeviceResponse, error) {
	if err := m.upsertDevice(req.GetDevice()); err != nil {
		return nil, err
	}
	return &v1beta1.RegisterDeviceResponse{
		DeviceName:      req.GetDevice().GetName(),
		DeviceNamespace: req.GetDevice().GetNamespace(),
	}, nil
}

// UpdateDevice implements v1beta1.DeviceMapperServiceServer.
func (m *Mapper) UpdateDevice(_ context.Context, req *v1beta1.UpdateDeviceRequest) (*v1beta1.UpdateDeviceResponse, error) {
	if err := m.upsertDevice(req.GetDevice()); err != nil {
		return nil, err
	}
	return &v1beta1.UpdateDeviceResponse{}, nil
}

// RemoveDevice implements v1beta1.DeviceMapperServiceServer. Removing an unknown device is not
// an error: the edge may retry.
func (m *Mapper) RemoveDevice(_ context.Context, req *v1beta1.RemoveDeviceRequest) (*v1beta1.RemoveDeviceResponse, error) {
	if err := checkName("device name", req.GetDeviceName()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removeLocked(key(req.GetDeviceNamespace(), req.GetDeviceName()))
	return &v1beta1.RemoveDeviceResponse{}, nil
}

// CreateDeviceModel implements v1beta1.DeviceMapperServiceServer.
func (m *Mapper) CreateDeviceModel(_ context.Context, req *v1beta1.CreateDeviceModelRequest) (*v1beta1.CreateDeviceModelResponse, error) {
	if err := m.upsertModel(req.GetModel()); err != nil {
		return nil, err
	}
	return &v1beta1.CreateDeviceModelResponse{
		DeviceModelName:      req.GetModel().GetName(),
		DeviceModelNamespace: req.GetModel().GetNamespace(),
	}, nil
}

// UpdateDeviceModel implements v1beta1.DeviceMapperServiceServer.
func (m *Mapper) UpdateDeviceModel(_ context.Context, req *v1beta1.UpdateDeviceModelRequest) (*v1beta1.UpdateDeviceModelResponse, error) {
	if err := m.upsertModel(req.GetModel()); err != nil {
		return nil, err
	}
	return &v1beta1.UpdateDeviceModelResponse{}, nil
}

// RemoveDeviceModel implements v1beta1.DeviceMapperServiceServer. Devices started with the
// model keep running: the edge removes them first.
func (m *Mapper) RemoveDeviceModel(_ context.Context, req *v1beta1.RemoveDeviceModelRequest) (*v1beta1.RemoveDeviceModelResponse, error) {
	if err := checkName("model name", req.GetModelName()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.models, key(req.GetModelNamespace(), req.GetModelName()))
	return &v1beta1.RemoveDeviceModelResponse{}, nil
}

// GetDevice implements v1beta1.DeviceMapperServiceServer: the device as pushed, with the
// twins the mapper has now.
func (m *Mapper) GetDevice(_ context.Context, req *v1beta1.GetDeviceRequest) (*v1beta1.GetDeviceResponse, error) {
	m.mu.Lock()
	e, ok := m.devices[key(req.GetDeviceNamespace(), req.GetDeviceName())]
	var d *v1beta1.Device
	var r *runner
	if ok {
		d = proto.Clone(e.spec).(*v1beta1.Device)
		if e.running {
			r = e.last
		}
	}
	m.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "device %s/%s not found", req.GetDeviceNamespace(), req.GetDeviceName())
	}
	if r != nil {
		d.Status = r.status()
	}
	return &v1beta1.GetDeviceResponse{Device: d}, nil
}

func (m *Mapper) upsertDevice(d *v1beta1.Device) error {
	if err := checkDevice(d); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if p := d.GetSpec().GetProtocol().GetProtocolName(); p != m.drv.Protocol() {
		return status.Errorf(codes.InvalidArgument, "device %s/%s has protocol %.64q, this mapper serves %q",
			d.GetNamespace(), d.GetName(), p, m.drv.Protocol())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key(d.GetNamespace(), d.GetName())
	e, ok := m.devices[k]
	if !ok {
		if len(m.devices) >= m.cfg.MaxDevices {
			return status.Errorf(codes.ResourceExhausted, "mapper already has %d devices", len(m.devices))
		}
		e = m.newEntryLocked(k)
	}
	e.spec = proto.Clone(d).(*v1beta1.Device)
	m.startLocked(e)
	return nil
}

func (m *Mapper) upsertModel(dm *v1beta1.DeviceModel) error {
	if err := checkModel(dm); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key(dm.GetNamespace(), dm.GetName())
	if _, ok := m.models[k]; !ok && len(m.models) >= m.cfg.MaxDevices {
		return status.Errorf(codes.ResourceExhausted, "mapper already has %d models", len(m.models))
	}
	m.models[k] = proto.Clone(dm).(*v1beta1.DeviceModel)
	for _, e := range m.devices {
		if modelKey(e.spec) == k {
			m.startLocked(e)
		}
	}
	return nil
}

func (m *Mapper) newEntryLocked(k string) *deviceEntry {
	e := &deviceEntry{last: m.retired[k]}
	delete(m.retired, k)
	m.devices[k] = e
	return e
}

func modelKey(d *v1beta1.Device) string {
	return key(d.GetNamespace(), d.GetSpec().GetDeviceModelReference())
}

// startLocked (re)starts the runner of e unless it already runs this very spec and model.
// m.mu must be held.
func (m *Mapper) startLocked(e *deviceEntry) {
	model := m.models[modelKey(e.spec)]
	if e.running && e.model != nil && proto.Equal(e.model, model) && proto.Equal(e.last.spec, e.spec) {
		return
	}
	log := m.log.With("device", key(e.spec.GetNamespace(), e.spec.GetName()))
	if e.last != nil {
		e.last.cancel()
		e.running = false
	}
	e.model = nil
	if model == nil {
		log.Warn("device model not known yet, device waits for it", "model", e.spec.GetSpec().GetDeviceModelReference())
		return
	}
	dev, skipped, err := decodeDevice(e.spec, model)
	if err != nil {
		log.Error("device not started", "err", err)
		return
	}
	for _, err := range skipped {
		log.Warn("property left out", "err", err)
	}
	stateCycle := m.cfg.StateCycle
	if rc := e.spec.GetStatus().GetReportCycle(); rc > 0 {
		stateCycle = cycle(rc)
	}
	r := newRunner(m, dev, stateCycle, e.last)
	r.spec = e.spec
	ctx, cancel := context.WithCancel(m.ctx)
	r.cancel = cancel
	e.last, e.model, e.running = r, model, true
	k := key(e.spec.GetNamespace(), e.spec.GetName())
	m.wg.Go(func() {
		r.run(ctx)
		m.mu.Lock()
		if m.retired[k] == r {
			delete(m.retired, k)
		}
		m.mu.Unlock()
	})
	log.Info("device started", "properties", len(dev.Properties))
}

func (m *Mapper) removeLocked(k string) {
	e, ok := m.devices[k]
	if !ok {
		return
	}
	if e.last != nil {
		e.last.cancel()
		// A device added again under this name must wait for this runner to finish.
		m.retired[k] = e.last
	}
	delete(m.devices, k)
	m.log.Info("device removed", "device", k)
}

// sync makes the mapper's devices and models those of a registration answer.
func (m *Mapper) sync(resp *v1beta1.MapperRegisterResponse) error {
	if n := len(resp.GetDeviceList()); n > m.cfg.MaxDevices {
		return fmt.Errorf("edge sent %d devices, limit %d", n, m.cfg.MaxDevices)
	}
	if n := len(resp.GetModelList()); n > m.cfg.MaxDevices {
		return fmt.Errorf("edge sent %d models, limit %d", n, m.cfg.MaxDevices)
	}
	models := make(map[string]*v1beta1.DeviceModel, len(resp.GetModelList()))
	for _, dm := range resp.GetModelList() {
		if err := checkModel(dm); err != nil {
			m.log.Error("model from the edge ignored", "err", err)
			continue
		}
		models[key(dm.GetNamespace(), dm.GetName())] = proto.Clone(dm).(*v1beta1.DeviceModel)
	}
	devices := make(map[string]*v1beta1.Device, len(resp.GetDeviceList()))
	for _, d := range resp.GetDeviceList() {
		if err := checkDevice(d); err != nil {
			m.log.Error("device from the edge ignored", "err", err)
			continue
		}
		if p := d.GetSpec().GetProtocol().GetProtocolName(); p != m.drv.Protocol() {
			m.log.Warn("device of another protocol ignored", "device", key(d.GetNamespace(), d.GetName()), "protocol", p)
			continue
		}
		devices[key(d.GetNamespace(), d.GetName())] = d
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	m.models = models
	for k := range m.devices {
		if _, ok := devices[k]; !ok {
			m.removeLocked(k)
		}
	}
	for k, d := range devices {
		e, ok := m.devices[k]
		if !ok {
			e = m.newEntryLocked(k)
		}
		e.spec = proto.Clone(d).(*v1beta1.Device)
		m.startLocked(e)
	}
	m.log.Info("registered with the edge", "devices", len(devices), "models", len(models))
	return nil
}
