package dmi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/skerry-io/skerry/api/dmi/v1beta1"
	"github.com/skerry-io/skerry/edge/devicetwin"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

const waitFor = 10 * time.Second

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// shortDir returns a temporary directory with a short path: unix socket paths are limited
// to 108 bytes and t.TempDir() can be long.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "dmi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t *testing.T, dir string) *store.DB { return openStoreF(t, dir) }

func openStoreF(t testing.TB, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dir, store.Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// putModelF stores model thermo and device t1 (modbus) for tests without a *testing.T.
func putModelF(t testing.TB, db *store.DB) {
	t.Helper()
	for _, o := range []struct {
		typ     wire.ResourceType
		name    string
		content string
	}{
		{wire.TypeDeviceModel, "thermo", `{"metadata":{"name":"thermo","namespace":"default"},"spec":{"properties":[{"name":"temp","type":"FLOAT"}]}}`},
		{wire.TypeDevice, "t1", `{"metadata":{"name":"t1","namespace":"default"},"spec":{"deviceModelRef":{"name":"thermo"},"protocol":{"protocolName":"modbus"},"properties":[{"name":"temp"}]}}`},
	} {
		res := wire.Key{Namespace: "default", Type: o.typ, Name: o.name}.String()
		m := wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: wire.OpInsert, Resource: res}, json.RawMessage(o.content))
		if err := db.ApplyMessage(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

func putObj(t *testing.T, db *store.DB, typ wire.ResourceType, ns, name, content string) {
	t.Helper()
	res := wire.Key{Namespace: ns, Type: typ, Name: name}.String()
	m := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: res}, json.RawMessage(content))
	if err := db.ApplyMessage(context.Background(), m); err != nil {
		t.Fatalf("apply %s: %v", res, err)
	}
}

func deleteObj(t *testing.T, db *store.DB, typ wire.ResourceType, ns, name string) {
	t.Helper()
	res := wire.Key{Namespace: ns, Type: typ, Name: name}.String()
	m := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: wire.OpDelete, Resource: res}, json.RawMessage(`null`))
	if err := db.ApplyMessage(context.Background(), m); err != nil {
		t.Fatalf("delete %s: %v", res, err)
	}
}

// putDevice stores a device of model thermo with one property "temp" whose desired value is
// desired.
func putDevice(t *testing.T, db *store.DB, name, protocol, model, desired string) {
	t.Helper()
	putObj(t, db, wire.TypeDevice, "default", name, fmt.Sprintf(`{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device",
		"metadata":{"name":%q,"namespace":"default","uid":"uid-%s"},
		"spec":{"deviceModelRef":{"name":%q},"nodeName":"edge-1","protocol":{"protocolName":%q,"configData":{"ip":"10.0.0.1","port":502}},
		"properties":[{"name":"temp","desired":{"value":%q},"reportCycle":1000}]}}`, name, name, model, protocol, desired))
}

func putModel(t *testing.T, db *store.DB, name, unit string) {
	t.Helper()
	putObj(t, db, wire.TypeDeviceModel, "default", name, fmt.Sprintf(`{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceModel",
		"metadata":{"name":%q,"namespace":"default","uid":"uid-m-%s"},
		"spec":{"protocol":"modbus","properties":[{"name":"temp","type":"FLOAT","accessMode":"ReadWrite","unit":%q}]}}`, name, name, unit))
}

// fakeTwins records reports and answers Expected from a settable map.
type fakeTwins struct {
	mu       sync.Mutex
	expected map[string]map[string]devicetwin.Value // by "ns/name"
	reports  map[string][]devicetwin.Report
	states   map[string]string
	err      error
	panicky  bool
}

func newFakeTwins() *fakeTwins {
	return &fakeTwins{expected: map[string]map[string]devicetwin.Value{}, reports: map[string][]devicetwin.Report{}, states: map[string]string{}}
}

func (f *fakeTwins) ReportTwins(_ context.Context, ns, name string, reports []devicetwin.Report) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.reports[ns+"/"+name] = append(f.reports[ns+"/"+name], reports...)
	return nil
}

func (f *fakeTwins) ReportState(_ context.Context, ns, name, state string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panicky {
		panic("fake twin panics")
	}
	if f.err != nil {
		return f.err
	}
	f.states[ns+"/"+name] = state
	return nil
}

func (f *fakeTwins) Expected(ns, name string) map[string]devicetwin.Value {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.expected[ns+"/"+name]
}

func (f *fakeTwins) setExpected(ns, name string, v map[string]devicetwin.Value) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expected[ns+"/"+name] = v
}

// fakeMapper is a real DeviceMapperService on a unix socket. It keeps what it was sent and
// a log of calls; failing makes every call fail with Unavailable.
type fakeMapper struct {
	pb.UnimplementedDeviceMapperServiceServer
	addr string
	gs   *grpc.Server

	mu      sync.Mutex
	devices map[string]*pb.Device
	models  map[string]*pb.DeviceModel
	calls   []string
	failing bool
}

func startFakeMapper(t *testing.T, addr string) *fakeMapper {
	t.Helper()
	f := &fakeMapper{addr: addr, devices: map[string]*pb.Device{}, models: map[string]*pb.DeviceModel{}}
	l, err := net.Listen("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	f.gs = grpc.NewServer()
	pb.RegisterDeviceMapperServiceServer(f.gs, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.gs.Serve(l) //nolint:errcheck // ends with Stop
	}()
	t.Cleanup(func() {
		f.gs.Stop()
		<-done
	})
	return f
}

func (f *fakeMapper) record(call string) error {
	f.calls = append(f.calls, call)
	if f.failing {
		return status.Error(codes.Unavailable, "fake mapper is failing")
	}
	return nil
}

func (f *fakeMapper) setFailing(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = v
}

func (f *fakeMapper) RegisterDevice(_ context.Context, r *pb.RegisterDeviceRequest) (*pb.RegisterDeviceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := r.GetDevice().GetNamespace() + "/" + r.GetDevice().GetName()
	if err := f.record("RegisterDevice " + k); err != nil {
		return nil, err
	}
	if f.devices[k] != nil {
		return nil, status.Error(codes.AlreadyExists, "exists")
	}
	f.devices[k] = r.GetDevice()
	return &pb.RegisterDeviceResponse{DeviceName: r.GetDevice().GetName(), DeviceNamespace: r.GetDevice().GetNamespace()}, nil
}

func (f *fakeMapper) UpdateDevice(_ context.Context, r *pb.UpdateDeviceRequest) (*pb.UpdateDeviceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := r.GetDevice().GetNamespace() + "/" + r.GetDevice().GetName()
	if err := f.record("UpdateDevice " + k); err != nil {
		return nil, err
	}
	if f.devices[k] == nil {
		return nil, status.Error(codes.NotFound, "no such device")
	}
	f.devices[k] = r.GetDevice()
	return &pb.UpdateDeviceResponse{}, nil
}

func (f *fakeMapper) RemoveDevice(_ context.Context, r *pb.RemoveDeviceRequest) (*pb.RemoveDeviceResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := r.GetDeviceNamespace() + "/" + r.GetDeviceName()
	if err := f.record("RemoveDevice " + k); err != nil {
		return nil, err
	}
	delete(f.devices, k)
	return &pb.RemoveDeviceResponse{}, nil
}

func (f *fakeMapper) CreateDeviceModel(_ context.Context, r *pb.CreateDeviceModelRequest) (*pb.CreateDeviceModelResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := r.GetModel().GetNamespace() + "/" + r.GetModel().GetName()
	if err := f.record("CreateDeviceModel " + k); err != nil {
		return nil, err
	}
	f.models[k] = r.GetModel()
	return &pb.CreateDeviceModelResponse{DeviceModelName: r.GetModel().GetName(), DeviceModelNamespace: r.GetModel().GetNamespace()}, nil
}

func (f *fakeMapper) UpdateDeviceModel(_ context.Context, r *pb.UpdateDeviceModelRequest) (*pb.UpdateDeviceModelResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := r.GetModel().GetNamespace() + "/" + r.GetModel().GetName()
	if err := f.record("UpdateDeviceModel " + k); err != nil {
		return nil, err
	}
	f.models[k] = r.GetModel()
	return &pb.UpdateDeviceModelResponse{}, nil
}

func (f *fakeMapper) RemoveDeviceModel(_ context.Context, r *pb.RemoveDeviceModelRequest) (*pb.RemoveDeviceModelResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := r.GetModelNamespace() + "/" + r.GetModelName()
	if err := f.record("RemoveDeviceModel " + k); err != nil {
		return nil, err
	}
	delete(f.models, k)
	return &pb.RemoveDeviceModelResponse{}, nil
}

// device returns a copy of what the mapper holds for ns/name.
func (f *fakeMapper) device(k string) *pb.Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.devices[k]; d != nil {
		return proto.Clone(d).(*pb.Device)
	}
	return nil
}

func (f *fakeMapper) hasModel(k string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.models[k] != nil
}

func (f *fakeMapper) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeMapper) countCalls(prefix string) int {
	n := 0
	for _, c := range f.callLog() {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// desiredOf returns the desired value of property prop of the mapper's copy of device k.
func (f *fakeMapper) desiredOf(k, prop string) string {
	d := f.device(k)
	for _, p := range d.GetSpec().GetProperties() {
		if p.GetName() == prop {
			return p.GetDesired().GetValue()
		}
	}
	return "<none>"
}

// testServer is a running Server with a client connected to it.
type testServer struct {
	s      *Server
	client pb.DeviceManagerServiceClient
	socket string
	stop   func() error // cancels Run and returns its error
}

func startServer(t *testing.T, dir string, db *store.DB, twins Twins, tweak func(*Config)) *testServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Socket = filepath.Join(dir, "dmi.sock")
	cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 100*time.Millisecond
	cfg.CallTimeout = 2 * time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg, Deps{Store: db, Twins: twins, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(ctx) }()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-runErr:
			case <-time.After(waitFor):
				stopErr = errors.New("Run did not return")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { stop() }) //nolint:errcheck // tests that care call stop themselves
	eventually(t, "the DMI socket", func() bool {
		c, err := net.Dial("unix", cfg.Socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	conn, err := grpc.NewClient("unix://"+cfg.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &testServer{s: s, client: pb.NewDeviceManagerServiceClient(conn), socket: cfg.Socket, stop: stop}
}

func register(t *testing.T, c pb.DeviceManagerServiceClient, name, protocol, addr string, withData bool) *pb.MapperRegisterResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	resp, err := c.MapperRegister(ctx, &pb.MapperRegisterRequest{WithData: withData, Mapper: &pb.MapperInfo{
		Name: name, Protocol: protocol, Address: []byte(addr), Version: "v1.0.0", ApiVersion: "v1beta1",
	}})
	if err != nil {
		t.Fatalf("MapperRegister: %v", err)
	}
	return resp
}
