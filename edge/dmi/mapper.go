package dmi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	pb "github.com/skerry-io/skerry/api/dmi/v1beta1"
	"github.com/skerry-io/skerry/pkg/wire"
)

// MapperType is the store type of persisted mapper registrations: local objects, named by
// the mapper's name in lowercase, in no namespace.
const MapperType wire.ResourceType = "mapper"

// maxMapperRecv bounds a mapper's answers; the ones the server reads are empty or a name.
const maxMapperRecv = 1 << 20

// registration is what a mapper told MapperRegister, as persisted.
type registration struct {
	Name       string `json:"name"`
	Protocol   string `json:"protocol"`
	Address    string `json:"address"`
	Version    string `json:"version,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// key is the registration's identity: mapper names are case-insensitive, so that the name
// is also a valid store key.
func (r registration) key() string { return strings.ToLower(r.Name) }

type record struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	registration
}

func (s *Server) persist(ctx context.Context, r registration) error {
	var rec record
	rec.Metadata.Name = r.key()
	rec.registration = r
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.store.PutLocal(ctx, wire.Key{Type: MapperType, Name: r.key()}, b)
}

// loadMappers starts a worker for every persisted registration. The mappers' state is
// unknown (edgecore restarted; they may have kept running or not), so each gets the node's
// current devices pushed as upserts.
func (s *Server) loadMappers(ctx context.Context) error {
	objs, err := s.store.ListLocal(ctx, MapperType)
	if err != nil {
		return fmt.Errorf("dmi: load mapper registrations: %w", err)
	}
	for _, o := range objs {
		var rec record
		if err := json.Unmarshal(o.Content, &rec); err != nil {
			s.log.Error("undecodable mapper registration in store; ignored", "key", o.Key.String(), "err", err)
			continue
		}
		r, err := validateRegistration(&pb.MapperInfo{
			Name: rec.Name, Protocol: rec.Protocol, Address: []byte(rec.Address),
			Version: rec.Version, ApiVersion: rec.APIVersion,
		})
		if err != nil || r.key() != o.Key.Name {
			s.log.Error("invalid mapper registration in store; ignored", "key", o.Key.String(), "err", err)
			continue
		}
		m := s.newMapper(r)
		m.unknown = true
		s.mu.Lock()
		if old := s.protocolMapperLocked(r.Protocol); old != nil {
			s.mu.Unlock()
			s.log.Warn("two persisted mappers for one protocol; keeping the first", "mapper", r.Name, "kept", old.reg.Name, "protocol", r.Protocol)
			continue
		}
		s.mappers[r.key()] = m
		for k := range s.devices {
			m.markDevice(k)
		}
		s.mu.Unlock()
		s.start(m)
		s.log.Info("mapper registration loaded", "mapper", r.Name, "protocol", r.Protocol, "address", r.Address)
	}
	return nil
}

// protocolMapperLocked returns the mapper serving protocol, or nil.
func (s *Server) protocolMapperLocked(protocol string) *mapper {
	for _, m := range s.mappers {
		if m.reg.Protocol == protocol {
			return m
		}
	}
	return nil
}

// stopMappers stops every worker; registrations stay persisted.
func (s *Server) stopMappers() {
	s.mu.Lock()
	s.ctx = nil
	ms := s.mappers
	s.mappers = map[string]*mapper{}
	s.mu.Unlock()
	for _, m := range ms {
		s.stopMapper(m)
	}
	s.wg.Wait()
}

// sentDevice is what a mapper has of one device, as far as the server knows.
type sentDevice struct {
	hash  string // of the pushed message
	model objKey
}

// mapper is one registered mapper and its push worker. The worker pushes level-triggered:
// it compares the current device or model with what it pushed last and sends the
// difference, so a retry always carries the current state.
type mapper struct {
	reg  registration
	log  *slog.Logger
	wake chan struct{} // capacity 1
	done chan struct{} // closed when the worker has exited (or never started)

	// Guarded by Server.mu.
	cancel       context.CancelFunc // set by start
	stopped      bool               // set by stopMapper: start must not run the worker
	dirtyDevices map[objKey]struct{}
	dirtyModels  map[objKey]struct{}

	// Owned by the worker (set before it starts).
	conn    *grpc.ClientConn
	client  pb.DeviceMapperServiceClient
	devices map[objKey]sentDevice
	models  map[objKey]string // model hash
	// unknown: the server does not know what the mapper holds (after an edgecore restart),
	// so pushes are upserts: update first, register when the mapper does not know it.
	unknown bool
}

func (s *Server) newMapper(r registration) *mapper {
	return &mapper{
		reg:          r,
		log:          s.log.With("mapper", r.Name, "protocol", r.Protocol),
		wake:         make(chan struct{}, 1),
		done:         make(chan struct{}),
		dirtyDevices: map[objKey]struct{}{},
		dirtyModels:  map[objKey]struct{}{},
		devices:      map[objKey]sentDevice{},
		models:       map[objKey]string{},
	}
}

func (m *mapper) markDevice(k objKey) {
	m.dirtyDevices[k] = struct{}{}
	m.poke()
}

func (m *mapper) markModel(k objKey) {
	m.dirtyModels[k] = struct{}{}
	m.poke()
}

func (m *mapper) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// start runs m's worker under Run's context; once Run is over, or m stopped, it only marks
// the worker done.
func (s *Server) start(m *mapper) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || m.stopped {
		close(m.done)
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	m.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(m.done)
		defer cancel()
		s.work(ctx, m)
	}()
}

// stopMapper ends m's worker and waits for it. A registration in flight may not have
// started m yet; start then sees it stopped.
func (s *Server) stopMapper(m *mapper) {
	s.mu.Lock()
	m.stopped = true
	cancel := m.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	<-m.done
}

// work pushes m's dirty devices and models whenever there are some, backing off
// exponentially (capped at RetryMax) while pushes fail; each failed attempt is logged once.
func (s *Server) work(ctx context.Context, m *mapper) {
	defer func() {
		if m.conn != nil {
			m.conn.Close()
		}
	}()
	var backoff time.Duration
	for {
		if backoff == 0 {
			select {
			case <-ctx.Done():
				return
			case <-m.wake:
			}
		} else {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		err := s.sync(ctx, m)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if backoff > 0 {
				m.log.Info("pushes to mapper succeed again")
			}
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, s.cfg.RetryMin), s.cfg.RetryMax)
		m.log.Warn("push to mapper failed; retrying", "address", m.reg.Address, "retryIn", backoff, "err", err)
	}
}

// sync pushes every dirty device and model. It stops at the first failure (the mapper is
// likely unreachable) and marks what it did not finish dirty again.
func (s *Server) sync(ctx context.Context, m *mapper) error {
	s.mu.Lock()
	devs, models := m.dirtyDevices, m.dirtyModels
	m.dirtyDevices, m.dirtyModels = map[objKey]struct{}{}, map[objKey]struct{}{}
	s.mu.Unlock()

	var err error
	// Devices first: a new device creates its model, a removed one may remove it.
	for _, k := range sortedKeys(devs) {
		if err = s.syncDevice(ctx, m, k); err != nil {
			break
		}
		delete(devs, k)
	}
	if err == nil {
		for _, k := range sortedKeys(models) {
			if err = s.syncModel(ctx, m, k); err != nil {
				break
			}
			delete(models, k)
		}
	}
	if err != nil {
		s.mu.Lock()
		for k := range devs {
			m.dirtyDevices[k] = struct{}{}
		}
		for k := range models {
			m.dirtyModels[k] = struct{}{}
		}
		s.mu.Unlock()
	}
	return err
}

func (s *Server) client(m *mapper) (pb.DeviceMapperServiceClient, error) {
	if m.client != nil {
		return m.client, nil
	}
	// NewClient does not connect; the first call does, and a later call reconnects.
	conn, err := grpc.NewClient("unix://"+m.reg.Address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMapperRecv)),
		// Reconnect at the push retry's pace rather than gRPC's (up to two minutes), so a
		// restarted mapper gets its devices soon.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: s.cfg.RetryMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: s.cfg.RetryMax},
			MinConnectTimeout: s.cfg.CallTimeout,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", m.reg.Address, err)
	}
	m.conn, m.client = conn, pb.NewDeviceMapperServiceClient(conn)
	return m.client, nil
}

// call runs one call to the mapper with the call timeout.
func (s *Server) call(ctx context.Context, m *mapper, what string, fn func(context.Context, pb.DeviceMapperServiceClient) error) error {
	c, err := s.client(m)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	if err := fn(cctx, c); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	m.log.Debug("pushed to mapper", "call", what)
	return nil
}

// syncDevice brings the mapper's copy of device k up to date.
func (s *Server) syncDevice(ctx context.Context, m *mapper, k objKey) error {
	s.mu.Lock()
	d := s.devices[k]
	if d != nil && protocolOf(d) != m.reg.Protocol {
		d = nil // not this mapper's (any more)
	}
	mk, hasModel := objKey{}, false
	if d != nil {
		mk, hasModel = modelOf(d)
	}
	model := s.models[mk]
	s.mu.Unlock()

	sent, has := m.devices[k]
	if d == nil {
		if !has {
			return nil
		}
		err := s.call(ctx, m, "RemoveDevice "+k.String(), func(ctx context.Context, c pb.DeviceMapperServiceClient) error {
			_, err := c.RemoveDevice(ctx, &pb.RemoveDeviceRequest{DeviceName: k.Name, DeviceNamespace: k.Namespace})
			return ignoreCode(err, codes.NotFound)
		})
		if err != nil {
			return err
		}
		delete(m.devices, k)
		m.log.Info("device removed from mapper", "device", k.String())
		return s.dropModelIfUnused(ctx, m, sent.model)
	}
	if !hasModel || model == nil {
		// Mappers need the model to drive a device; the model's arrival marks it again.
		m.log.Debug("device waits for its model", "device", k.String())
		return nil
	}
	dp, err := deviceToProto(d, s.twins.Expected(k.Namespace, k.Name))
	if err != nil {
		// Retrying cannot fix the object; its next change marks it again.
		m.log.Error("device cannot be converted for the mapper; not pushed", "device", k.String(), "err", err)
		return nil
	}
	h, err := hashOf(dp)
	if err != nil {
		m.log.Error("device cannot be encoded for the mapper; not pushed", "device", k.String(), "err", err)
		return nil
	}
	if err := s.ensureModel(ctx, m, mk, modelToProto(model)); err != nil {
		return err
	}
	switch {
	case has && sent.hash == h:
	case has:
		err = s.updateDevice(ctx, m, dp, false)
	default:
		err = s.updateDevice(ctx, m, dp, !m.unknown)
	}
	if err != nil {
		return err
	}
	m.devices[k] = sentDevice{hash: h, model: mk}
	if has && sent.hash != h {
		m.log.Info("device updated on mapper", "device", k.String())
	} else if !has {
		m.log.Info("device pushed to mapper", "device", k.String())
	}
	if has && sent.model != mk {
		return s.dropModelIfUnused(ctx, m, sent.model)
	}
	return nil
}

// updateDevice registers (create) or updates the device, falling back to the other call
// when the mapper says the device already exists or does not exist.
func (s *Server) updateDevice(ctx context.Context, m *mapper, dp *pb.Device, create bool) error {
	name := "device " + dp.GetNamespace() + "/" + dp.GetName()
	register := func(ctx context.Context, c pb.DeviceMapperServiceClient) error {
		_, err := c.RegisterDevice(ctx, &pb.RegisterDeviceRequest{Device: dp})
		return err
	}
	update := func(ctx context.Context, c pb.DeviceMapperServiceClient) error {
		_, err := c.UpdateDevice(ctx, &pb.UpdateDeviceRequest{Device: dp})
		return err
	}
	if create {
		err := s.call(ctx, m, "RegisterDevice "+name, register)
		if status.Code(err) == codes.AlreadyExists {
			return s.call(ctx, m, "UpdateDevice "+name, update)
		}
		return err
	}
	err := s.call(ctx, m, "UpdateDevice "+name, update)
	if status.Code(err) == codes.NotFound {
		return s.call(ctx, m, "RegisterDevice "+name, register)
	}
	return err
}

// ensureModel makes the mapper hold the current version of model mk.
func (s *Server) ensureModel(ctx context.Context, m *mapper, mk objKey, mp *pb.DeviceModel) error {
	h, err := hashOf(mp)
	if err != nil {
		return fmt.Errorf("model %s cannot be encoded: %w", mk, err)
	}
	have, ok := m.models[mk]
	if ok && have == h {
		return nil
	}
	name := "model " + mk.String()
	create := func(ctx context.Context, c pb.DeviceMapperServiceClient) error {
		_, err := c.CreateDeviceModel(ctx, &pb.CreateDeviceModelRequest{Model: mp})
		return err
	}
	update := func(ctx context.Context, c pb.DeviceMapperServiceClient) error {
		_, err := c.UpdateDeviceModel(ctx, &pb.UpdateDeviceModelRequest{Model: mp})
		return err
	}
	if ok {
		err = s.call(ctx, m, "UpdateDeviceModel "+name, update)
		if status.Code(err) == codes.NotFound {
			err = s.call(ctx, m, "CreateDeviceModel "+name, create)
		}
	} else {
		err = s.call(ctx, m, "CreateDeviceModel "+name, create)
		if status.Code(err) == codes.AlreadyExists {
			err = s.call(ctx, m, "UpdateDeviceModel "+name, update)
		}
	}
	if err != nil {
		return err
	}
	m.models[mk] = h
	return nil
}

// syncModel pushes a changed model the mapper holds, or removes a deleted one nothing uses.
func (s *Server) syncModel(ctx context.Context, m *mapper, mk objKey) error {
	if _, ok := m.models[mk]; !ok {
		return nil // devices bring their model along
	}
	s.mu.Lock()
	model := s.models[mk]
	s.mu.Unlock()
	if model == nil {
		return s.dropModelIfUnused(ctx, m, mk)
	}
	return s.ensureModel(ctx, m, mk, modelToProto(model))
}

// dropModelIfUnused removes model mk from the mapper when none of its devices uses it.
func (s *Server) dropModelIfUnused(ctx context.Context, m *mapper, mk objKey) error {
	if _, ok := m.models[mk]; !ok {
		return nil
	}
	for _, d := range m.devices {
		if d.model == mk {
			return nil
		}
	}
	err := s.call(ctx, m, "RemoveDeviceModel "+mk.String(), func(ctx context.Context, c pb.DeviceMapperServiceClient) error {
		_, err := c.RemoveDeviceModel(ctx, &pb.RemoveDeviceModelRequest{ModelName: mk.Name, ModelNamespace: mk.Namespace})
		return ignoreCode(err, codes.NotFound)
	})
	if err != nil {
		return err
	}
	delete(m.models, mk)
	return nil
}

func ignoreCode(err error, c codes.Code) error {
	if status.Code(err) == c {
		return nil
	}
	return err
}

// hashOf identifies a message's content: deterministic marshalling makes equal messages
// equal bytes. It fails for what gRPC could not send either (invalid UTF-8).
func hashOf(msg proto.Message) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// register persists r, replaces any mapper of the same name or protocol (one mapper serves
// a protocol: two would drive the same devices), and answers with the devices of r's
// protocol and their models. With withData the answer is what the mapper holds from then
// on; without it the devices are pushed to it instead.
func (s *Server) register(ctx context.Context, r registration, withData bool) (*pb.MapperRegisterResponse, error) {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	s.mu.Lock()
	running := s.ctx != nil
	s.mu.Unlock()
	if !running {
		return nil, status.Error(codes.Unavailable, "the DMI server is not running")
	}
	if err := s.persist(ctx, r); err != nil {
		s.log.Error("could not persist mapper registration", "mapper", r.Name, "err", err)
		return nil, status.Errorf(codes.Unavailable, "could not store the registration: %v", err)
	}
	s.mu.Lock()
	var old []*mapper
	for key, m := range s.mappers {
		if key == r.key() || m.reg.Protocol == r.Protocol {
			old = append(old, m)
			delete(s.mappers, key)
		}
	}
	s.mu.Unlock()
	for _, o := range old {
		s.stopMapper(o)
		if o.reg.key() != r.key() {
			s.log.Warn("mapper replaced by a newer one for its protocol", "mapper", o.reg.Name, "by", r.Name, "protocol", r.Protocol)
			if err := s.store.DeleteLocal(ctx, wire.Key{Type: MapperType, Name: o.reg.key()}); err != nil {
				s.log.Error("could not delete replaced mapper registration", "mapper", o.reg.Name, "err", err)
			}
		}
	}

	m := s.newMapper(r)
	type entry struct {
		k     objKey
		d     *devicesv1beta1.Device
		model *devicesv1beta1.DeviceModel
	}
	var snap []entry
	s.mu.Lock()
	if s.ctx == nil {
		s.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "the DMI server is shutting down")
	}
	// Installed before the snapshot is converted: changes from now on mark it dirty.
	s.mappers[r.key()] = m
	for k, d := range s.devices {
		if protocolOf(d) != r.Protocol {
			continue
		}
		e := entry{k: k, d: d}
		if mk, ok := modelOf(d); ok {
			e.model = s.models[mk]
		}
		snap = append(snap, e)
	}
	s.mu.Unlock()
	sort.Slice(snap, func(i, j int) bool { return snap[i].k.less(snap[j].k) })

	resp := &pb.MapperRegisterResponse{}
	var pending []objKey
	for _, e := range snap {
		if e.model == nil {
			continue // waits for its model, whose arrival marks it
		}
		if !withData {
			pending = append(pending, e.k)
			continue
		}
		dp, err := deviceToProto(e.d, s.twins.Expected(e.k.Namespace, e.k.Name))
		if err != nil {
			m.log.Error("device cannot be converted for the mapper; left out", "device", e.k.String(), "err", err)
			continue
		}
		dh, err := hashOf(dp)
		if err != nil {
			m.log.Error("device cannot be encoded for the mapper; left out", "device", e.k.String(), "err", err)
			continue
		}
		mk, _ := modelOf(e.d)
		if _, ok := m.models[mk]; !ok {
			mp := modelToProto(e.model)
			mh, err := hashOf(mp)
			if err != nil {
				m.log.Error("model cannot be encoded for the mapper; device left out", "model", mk.String(), "err", err)
				continue
			}
			m.models[mk] = mh
			resp.ModelList = append(resp.ModelList, mp)
		}
		resp.DeviceList = append(resp.DeviceList, dp)
		m.devices[e.k] = sentDevice{hash: dh, model: mk}
	}
	if len(pending) > 0 {
		s.mu.Lock()
		for _, k := range pending {
			m.markDevice(k)
		}
		s.mu.Unlock()
	}
	s.start(m)
	m.log.Info("mapper registered", "address", r.Address, "version", r.Version, "apiVersion", r.APIVersion,
		"withData", withData, "devices", len(snap))
	return resp, nil
}
