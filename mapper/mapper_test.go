package mapper

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/skerry-io/skerry/api/dmi/v1beta1"
	"github.com/skerry-io/skerry/mapper/dmiconv"
)

// fakeEdge is a DeviceManagerService on a unix socket that records what mappers tell it.
type fakeEdge struct {
	v1beta1.UnimplementedDeviceManagerServiceServer
	srv *grpc.Server

	mu        sync.Mutex
	answer    *v1beta1.MapperRegisterResponse
	registers []*v1beta1.MapperRegisterRequest
	statuses  []*v1beta1.ReportDeviceStatusRequest
	states    []*v1beta1.ReportDeviceStatesRequest
	statusAt  []time.Time
	gone      map[string]bool // devices the edge answers NotFound for
}

func startEdge(t *testing.T, path string, answer *v1beta1.MapperRegisterResponse) *fakeEdge {
	t.Helper()
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	e := &fakeEdge{srv: grpc.NewServer(), answer: answer}
	v1beta1.RegisterDeviceManagerServiceServer(e.srv, e)
	go func() { _ = e.srv.Serve(lis) }()
	t.Cleanup(e.srv.Stop)
	return e
}

func (e *fakeEdge) MapperRegister(_ context.Context, req *v1beta1.MapperRegisterRequest) (*v1beta1.MapperRegisterResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.registers = append(e.registers, req)
	if e.answer == nil {
		return &v1beta1.MapperRegisterResponse{}, nil
	}
	return e.answer, nil
}

func (e *fakeEdge) ReportDeviceStatus(_ context.Context, req *v1beta1.ReportDeviceStatusRequest) (*v1beta1.ReportDeviceStatusResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone[req.GetDeviceName()] {
		return nil, status.Error(codes.NotFound, "device is not on this node")
	}
	e.statuses = append(e.statuses, req)
	e.statusAt = append(e.statusAt, time.Now())
	return &v1beta1.ReportDeviceStatusResponse{}, nil
}

func (e *fakeEdge) ReportDeviceStates(_ context.Context, req *v1beta1.ReportDeviceStatesRequest) (*v1beta1.ReportDeviceStatesResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.states = append(e.states, req)
	return &v1beta1.ReportDeviceStatesResponse{}, nil
}

// twin returns the newest reported twin of a device property, if any.
func (e *fakeEdge) twin(device, prop string) *v1beta1.Twin {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.statuses) - 1; i >= 0; i-- {
		if e.statuses[i].GetDeviceName() != device {
			continue
		}
		for _, tw := range e.statuses[i].GetReportedDevice().GetTwins() {
			if tw.GetPropertyName() == prop {
				return tw
			}
		}
	}
	return nil
}

func (e *fakeEdge) lastState(device string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.states) - 1; i >= 0; i-- {
		if e.states[i].GetDeviceName() == device {
			return e.states[i].GetState()
		}
	}
	return ""
}

func (e *fakeEdge) registerCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.registers)
}

// fakeDriver serves protocol "fake": values come from a table, writes land in it.
type fakeDriver struct {
	mu         sync.Mutex
	values     map[string]Value // property -> value
	readErr    error
	connectErr error
	connects   int
	reads      int
	writes     []string // "prop=value"
	devices    []*Device
}

func newFakeDriver() *fakeDriver { return &fakeDriver{values: map[string]Value{}} }

func (d *fakeDriver) Protocol() string { return "fake" }

func (d *fakeDriver) Connect(_ context.Context, dev *Device) (DeviceConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.connects++
	d.devices = append(d.devices, dev)
	if d.connectErr != nil {
		return nil, d.connectErr
	}
	return fakeConn{d}, nil
}

func (d *fakeDriver) set(f func(d *fakeDriver)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func (d *fakeDriver) get(f func(d *fakeDriver) bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return f(d)
}

type fakeConn struct{ d *fakeDriver }

func (c fakeConn) Read(_ context.Context, p *Property) (Value, error) {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.d.reads++
	if c.d.readErr != nil {
		return Value{}, c.d.readErr
	}
	v, ok := c.d.values[p.Name]
	if !ok {
		return Value{}, errors.New("no such register")
	}
	return v, nil
}

func (c fakeConn) Write(_ context.Context, p *Property, v Value) error {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	c.d.writes = append(c.d.writes, p.Name+"="+v.String())
	c.d.values[p.Name] = v
	return nil
}

func (c fakeConn) Close() error { return nil }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testModel() *v1beta1.DeviceModel {
	return &v1beta1.DeviceModel{Name: "thermo", Namespace: "default", Spec: &v1beta1.DeviceModelSpec{
		Properties: []*v1beta1.ModelProperty{
			{Name: "temperature", Type: "FLOAT", AccessMode: "ReadOnly"},
			{Name: "setpoint", Type: "INT", AccessMode: "ReadWrite", Minimum: "0", Maximum: "100"},
		},
	}}
}

func testDevice(name, desired string, cycleMs int64) *v1beta1.Device {
	cv, err := dmiconv.EncodeConfigData(map[string]any{"register": 7})
	if err != nil {
		panic(err)
	}
	return &v1beta1.Device{Name: name, Namespace: "default", Spec: &v1beta1.DeviceSpec{
		DeviceModelReference: "thermo",
		Protocol:             &v1beta1.ProtocolConfig{ProtocolName: "fake", ConfigData: cv},
		Properties: []*v1beta1.DeviceProperty{
			{Name: "temperature", CollectCycle: cycleMs, ReportCycle: cycleMs, ReportToCloud: true,
				Visitors: &v1beta1.VisitorConfig{ProtocolName: "fake", ConfigData: cv}},
			{Name: "setpoint", CollectCycle: cycleMs, ReportCycle: cycleMs,
				Desired: &v1beta1.TwinProperty{Value: desired}},
		},
	}}
}

type harness struct {
	dir    string
	edge   *fakeEdge
	drv    *fakeDriver
	cancel context.CancelFunc
	done   chan error
	client v1beta1.DeviceMapperServiceClient
}

func (h *harness) sock() string { return filepath.Join(h.dir, "m.sock") }
func (h *harness) dmi() string  { return filepath.Join(h.dir, "e.sock") }

func start(t *testing.T, answer *v1beta1.MapperRegisterResponse) *harness {
	t.Helper()
	h := &harness{dir: t.TempDir(), drv: newFakeDriver(), done: make(chan error, 1)}
	h.drv.values["temperature"] = DoubleValue(21.5)
	h.drv.values["setpoint"] = IntValue(10)
	h.edge = startEdge(t, h.dmi(), answer)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	cfg := Config{
		Name: "fake-mapper", Version: "v1.2.3", Socket: h.sock(), DMISocket: h.dmi(),
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, StateCycle: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	go func() { h.done <- Run(ctx, cfg, h.drv) }()
	t.Cleanup(h.stop(t))
	waitFor(t, "registration", func() bool { return h.edge.registerCount() > 0 })
	conn, err := grpc.NewClient("unix://"+h.sock(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h.client = v1beta1.NewDeviceMapperServiceClient(conn)
	return h
}

func (h *harness) stop(t *testing.T) func() {
	return func() {
		h.cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	}
}

func TestRegisterReportAndDesired(t *testing.T) {
	h := start(t, &v1beta1.MapperRegisterResponse{
		ModelList:  []*v1beta1.DeviceModel{testModel()},
		DeviceList: []*v1beta1.Device{testDevice("t1", "30", 50)},
	})
	h.edge.mu.Lock()
	reg := h.edge.registers[0]
	h.edge.mu.Unlock()
	mi := reg.GetMapper()
	if !reg.GetWithData() || mi.GetName() != "fake-mapper" || mi.GetProtocol() != "fake" ||
		mi.GetApiVersion() != "v1.0.0" || mi.GetVersion() != "v1.2.3" || string(mi.GetAddress()) != h.sock() || mi.GetState() != "ok" {
		t.Errorf("register request = %v", reg)
	}

	waitFor(t, "reported temperature", func() bool {
		tw := h.edge.twin("t1", "temperature")
		return tw.GetReported().GetValue() == "21.5"
	})
	tw := h.edge.twin("t1", "temperature")
	md := tw.GetReported().GetMetadata()
	if md["type"] != "float" {
		t.Errorf("type metadata = %q", md["type"])
	}
	if ms, err := strconv.ParseInt(md["timestamp"], 10, 64); err != nil || time.Since(time.UnixMilli(ms)) > time.Minute {
		t.Errorf("timestamp metadata = %q", md["timestamp"])
	}
	waitFor(t, "observed desired 30", func() bool {
		return h.edge.twin("t1", "setpoint").GetObservedDesired().GetValue() == "30"
	})
	if !h.drv.get(func(d *fakeDriver) bool { return len(d.writes) == 1 && d.writes[0] == "setpoint=30" }) {
		t.Errorf("writes = %v", h.drv.writes)
	}
	waitFor(t, "state ok", func() bool { return h.edge.lastState("t1") == StateOK })
	// The driver got the decoded configData.
	h.drv.mu.Lock()
	dev := h.drv.devices[0]
	h.drv.mu.Unlock()
	if dev.ProtocolConfig["register"] != int64(7) || dev.Properties[0].Visitor["register"] != int64(7) {
		t.Errorf("device config = %v, visitor %v", dev.ProtocolConfig, dev.Properties[0].Visitor)
	}

	ctx := context.Background()
	// A new desired value is written; one out of the model's range is not, and nothing breaks.
	if _, err := h.client.UpdateDevice(ctx, &v1beta1.UpdateDeviceRequest{Device: testDevice("t1", "40", 50)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "observed desired 40", func() bool {
		return h.edge.twin("t1", "setpoint").GetObservedDesired().GetValue() == "40"
	})
	if _, err := h.client.UpdateDevice(ctx, &v1beta1.UpdateDeviceRequest{Device: testDevice("t1", "1000", 50)}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.UpdateDevice(ctx, &v1beta1.UpdateDeviceRequest{Device: testDevice("t1", "warm", 50)}); err != nil {
		t.Fatal(err)
	}
	// Reports go on after the bad values, still observing 40.
	h.edge.mu.Lock()
	n := len(h.edge.statuses)
	h.edge.mu.Unlock()
	waitFor(t, "reports after bad desired values", func() bool {
		h.edge.mu.Lock()
		defer h.edge.mu.Unlock()
		return len(h.edge.statuses) > n+3
	})
	if got := h.edge.twin("t1", "setpoint").GetObservedDesired().GetValue(); got != "40" {
		t.Errorf("observed desired = %q, want 40", got)
	}
	h.drv.mu.Lock()
	writes := append([]string(nil), h.drv.writes...)
	h.drv.mu.Unlock()
	if len(writes) != 2 || writes[1] != "setpoint=40" {
		t.Errorf("writes = %v, want [setpoint=30 setpoint=40]", writes)
	}

	got, err := h.client.GetDevice(ctx, &v1beta1.GetDeviceRequest{DeviceName: "t1", DeviceNamespace: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetDevice().GetName() != "t1" || len(got.GetDevice().GetStatus().GetTwins()) != 2 {
		t.Errorf("GetDevice = %v", got)
	}
}

func TestPushedDeviceAndBadInput(t *testing.T) {
	h := start(t, nil)
	ctx := context.Background()
	// A device whose model is not there yet waits for it.
	if _, err := h.client.RegisterDevice(ctx, &v1beta1.RegisterDeviceRequest{Device: testDevice("t2", "", 50)}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.CreateDeviceModel(ctx, &v1beta1.CreateDeviceModelRequest{Model: testModel()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reports of t2", func() bool { return h.edge.twin("t2", "temperature") != nil })

	bad := map[string]*v1beta1.Device{
		"nil":            nil,
		"no name":        {Spec: &v1beta1.DeviceSpec{DeviceModelReference: "m", Protocol: &v1beta1.ProtocolConfig{ProtocolName: "fake"}}},
		"slash":          {Name: "a/b", Spec: &v1beta1.DeviceSpec{DeviceModelReference: "m", Protocol: &v1beta1.ProtocolConfig{ProtocolName: "fake"}}},
		"other protocol": {Name: "x", Spec: &v1beta1.DeviceSpec{DeviceModelReference: "m", Protocol: &v1beta1.ProtocolConfig{ProtocolName: "modbus"}}},
	}
	for name, d := range bad {
		_, err := h.client.RegisterDevice(ctx, &v1beta1.RegisterDeviceRequest{Device: d})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
	}
	if _, err := h.client.GetDevice(ctx, &v1beta1.GetDeviceRequest{DeviceName: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetDevice unknown: %v", err)
	}

	if _, err := h.client.RemoveDevice(ctx, &v1beta1.RemoveDeviceRequest{DeviceName: "t2", DeviceNamespace: "default"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.GetDevice(ctx, &v1beta1.GetDeviceRequest{DeviceName: "t2", DeviceNamespace: "default"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetDevice after remove: %v", err)
	}
	// Once removed, the device is no longer read.
	var reads int
	waitFor(t, "reads to stop", func() bool {
		h.drv.mu.Lock()
		before := h.drv.reads
		h.drv.mu.Unlock()
		time.Sleep(150 * time.Millisecond) // three collect cycles
		h.drv.mu.Lock()
		defer h.drv.mu.Unlock()
		reads = h.drv.reads
		return reads == before
	})
}

func TestDeviceStates(t *testing.T) {
	h := start(t, nil)
	h.drv.set(func(d *fakeDriver) { d.connectErr = errors.New("no route to device") })
	ctx := context.Background()
	if _, err := h.client.CreateDeviceModel(ctx, &v1beta1.CreateDeviceModelRequest{Model: testModel()}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.RegisterDevice(ctx, &v1beta1.RegisterDeviceRequest{Device: testDevice("t3", "", 20)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "disconnected", func() bool { return h.edge.lastState("t3") == StateDisconnected })
	// Retried with backoff.
	waitFor(t, "reconnect attempts", func() bool { return h.drv.get(func(d *fakeDriver) bool { return d.connects >= 3 }) })
	h.drv.set(func(d *fakeDriver) { d.connectErr = nil })
	waitFor(t, "ok", func() bool { return h.edge.lastState("t3") == StateOK })
	h.drv.set(func(d *fakeDriver) { d.readErr = errors.New("timeout") })
	waitFor(t, "unhealthy", func() bool { return h.edge.lastState("t3") == StateUnhealthy })
	// Failing reads make the SDK reconnect.
	h.drv.mu.Lock()
	connects := h.drv.connects
	h.drv.mu.Unlock()
	waitFor(t, "reconnect after failing reads", func() bool {
		return h.drv.get(func(d *fakeDriver) bool { return d.connects > connects })
	})
	h.drv.set(func(d *fakeDriver) { d.readErr = nil })
	waitFor(t, "ok again", func() bool { return h.edge.lastState("t3") == StateOK })
}

// TestDeviceGoneFromEdgeIsStopped: a device the edge no longer has (deleted while the edge
// could not tell the mapper) is stopped when a report is answered NotFound.
func TestDeviceGoneFromEdgeIsStopped(t *testing.T) {
	// The device comes with the registration answer, so a re-registration under load keeps it.
	h := start(t, &v1beta1.MapperRegisterResponse{
		ModelList:  []*v1beta1.DeviceModel{testModel()},
		DeviceList: []*v1beta1.Device{testDevice("t9", "", 20)},
	})
	ctx := context.Background()
	waitFor(t, "a report", func() bool { return h.edge.twin("t9", "temperature") != nil })
	h.edge.mu.Lock()
	h.edge.gone = map[string]bool{"t9": true}
	h.edge.mu.Unlock()
	waitFor(t, "device stopped", func() bool {
		_, err := h.client.GetDevice(ctx, &v1beta1.GetDeviceRequest{DeviceName: "t9", DeviceNamespace: "default"})
		return status.Code(err) == codes.NotFound
	})
}

func TestReportCadence(t *testing.T) {
	const cycle = 100 * time.Millisecond
	h := start(t, &v1beta1.MapperRegisterResponse{
		ModelList:  []*v1beta1.DeviceModel{testModel()},
		DeviceList: []*v1beta1.Device{testDevice("t4", "", cycle.Milliseconds())},
	})
	waitFor(t, "six reports", func() bool {
		h.edge.mu.Lock()
		defer h.edge.mu.Unlock()
		return len(h.edge.statusAt) >= 6
	})
	h.edge.mu.Lock()
	at := append([]time.Time(nil), h.edge.statusAt...)
	h.edge.mu.Unlock()
	// Reports are never closer than the cycle allows (a little slack for timer jitter), and
	// reads happen at least as often as reports.
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d < cycle*8/10 {
			t.Errorf("report %d came %v after the previous one, cycle %v", i, d, cycle)
		}
	}
	if reads := h.drv.get(func(d *fakeDriver) bool { return d.reads >= len(at) }); !reads {
		t.Errorf("fewer reads than reports")
	}
	if rc := h.edge.statusList()[0].GetReportedDevice().GetReportCycle(); rc != cycle.Milliseconds() {
		t.Errorf("reportCycle = %d", rc)
	}
}

func TestEdgeRestartReregisters(t *testing.T) {
	h := start(t, &v1beta1.MapperRegisterResponse{
		ModelList:  []*v1beta1.DeviceModel{testModel()},
		DeviceList: []*v1beta1.Device{testDevice("t5", "", 50)},
	})
	waitFor(t, "reports", func() bool { return h.edge.twin("t5", "temperature") != nil })
	h.edge.srv.Stop()
	// The new edge knows no devices: the mapper drops t5 after registering again.
	edge2 := startEdge(t, h.dmi(), &v1beta1.MapperRegisterResponse{})
	waitFor(t, "registration with the restarted edge", func() bool { return edge2.registerCount() > 0 })
	ctx := context.Background()
	waitFor(t, "t5 dropped", func() bool {
		_, err := h.client.GetDevice(ctx, &v1beta1.GetDeviceRequest{DeviceName: "t5", DeviceNamespace: "default"})
		return status.Code(err) == codes.NotFound
	})
}

func TestHTTPPush(t *testing.T) {
	got := make(chan Reading, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd Reading
		if r.URL.Path != "/readings" || json.NewDecoder(r.Body).Decode(&rd) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		select {
		case got <- rd:
		default:
		}
	}))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.ParseInt(u.Port(), 10, 64)
	d := testDevice("t6", "", 50)
	d.Spec.Properties[0].PushMethod = &v1beta1.PushMethod{
		Http:     &v1beta1.PushMethodHTTP{Hostname: "http://" + u.Hostname(), Port: port, Requestpath: "/readings", Timeout: 1000},
		DbMethod: &v1beta1.DBMethod{}, // not supported: logged, does not stop the HTTP push
	}
	start(t, &v1beta1.MapperRegisterResponse{ModelList: []*v1beta1.DeviceModel{testModel()}, DeviceList: []*v1beta1.Device{d}})
	select {
	case rd := <-got:
		want := Reading{Namespace: "default", DeviceName: "t6", PropertyName: "temperature", Value: "21.5", Type: "float", Timestamp: rd.Timestamp}
		if rd != want || rd.Timestamp == 0 {
			t.Errorf("reading = %+v", rd)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reading pushed")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	ctx := context.Background()
	if err := Run(ctx, Config{}, newFakeDriver()); err == nil {
		t.Error("empty name accepted")
	}
	// A regular file where the socket should be is not deleted.
	dir := t.TempDir()
	path := filepath.Join(dir, "file")
	if err := writeFile(path); err != nil {
		t.Fatal(err)
	}
	if err := Run(ctx, Config{Name: "x", Socket: path, DMISocket: filepath.Join(dir, "e.sock")}, newFakeDriver()); err == nil {
		t.Error("regular file replaced by the socket")
	}
}

func writeFile(path string) error { return os.WriteFile(path, []byte("x"), 0o600) }

func (e *fakeEdge) statusList() []*v1beta1.ReportDeviceStatusRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*v1beta1.ReportDeviceStatusRequest(nil), e.statuses...)
}
