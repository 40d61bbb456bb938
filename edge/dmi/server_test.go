package dmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/skerry-io/skerry/api/dmi/v1beta1"
	"github.com/skerry-io/skerry/edge/devicetwin"
	"github.com/skerry-io/skerry/pkg/wire"
)

func TestRegisterAnswersWithTheProtocolsDevicesAndPushesChanges(t *testing.T) {
	dir := shortDir(t)
	db := openStore(t, dir)
	putModel(t, db, "thermo", "C")
	putDevice(t, db, "t1", "modbus", "thermo", "20")
	putDevice(t, db, "other", "opcua", "thermo", "1")
	twins := newFakeTwins()
	srv := startServer(t, dir, db, twins, nil)
	fm := startFakeMapper(t, filepath.Join(dir, "m.sock"))

	resp := register(t, srv.client, "modbus-mapper", "modbus", fm.addr, true)
	if len(resp.GetDeviceList()) != 1 || resp.GetDeviceList()[0].GetName() != "t1" {
		t.Fatalf("deviceList = %v, want only t1", resp.GetDeviceList())
	}
	if len(resp.GetModelList()) != 1 || resp.GetModelList()[0].GetName() != "thermo" ||
		resp.GetModelList()[0].GetSpec().GetProperties()[0].GetUnit() != "C" {
		t.Fatalf("modelList = %v", resp.GetModelList())
	}
	if d := resp.GetDeviceList()[0]; d.GetSpec().GetProperties()[0].GetDesired().GetValue() != "20" || d.GetSpec().GetProtocol().GetProtocolName() != "modbus" {
		t.Fatalf("device = %v", d)
	}

	// The registration is persisted as a local object.
	objs, err := db.ListLocal(context.Background(), MapperType)
	if err != nil || len(objs) != 1 || objs[0].Key.Name != "modbus-mapper" {
		t.Fatalf("persisted registrations = %v, %v", objs, err)
	}

	// A new device of the protocol: the model is already there, so only RegisterDevice.
	putDevice(t, db, "t2", "modbus", "thermo", "5")
	eventually(t, "t2 registered", func() bool { return fm.device("default/t2") != nil })
	if n := fm.countCalls("CreateDeviceModel"); n != 0 {
		t.Errorf("%d CreateDeviceModel calls for a model the mapper has from the registration", n)
	}

	// A changed desired value: UpdateDevice.
	putDevice(t, db, "t1", "modbus", "thermo", "22")
	eventually(t, "t1 updated", func() bool { return fm.desiredOf("default/t1", "temp") == "22" })

	// A changed model: UpdateDeviceModel.
	putModel(t, db, "thermo", "K")
	eventually(t, "model updated", func() bool { return fm.countCalls("UpdateDeviceModel default/thermo") == 1 })

	// An expected value from the twin wins over the Device's after Resync.
	twins.setExpected("default", "t1", map[string]devicetwin.Value{"temp": {Value: "25", Metadata: map[string]string{"timestamp": "1"}}})
	srv.s.Resync("default", "t1")
	eventually(t, "t1 desired from the twin", func() bool { return fm.desiredOf("default/t1", "temp") == "25" })

	// Removing one device keeps the model; removing the last one removes it too.
	deleteObj(t, db, wire.TypeDevice, "default", "t1")
	eventually(t, "t1 removed", func() bool { return fm.countCalls("RemoveDevice default/t1") == 1 })
	deleteObj(t, db, wire.TypeDevice, "default", "t2")
	eventually(t, "model removed", func() bool { return fm.countCalls("RemoveDeviceModel default/thermo") == 1 })
	log := fm.callLog()
	if i, j := slices.Index(log, "RemoveDevice default/t2"), slices.Index(log, "RemoveDeviceModel default/thermo"); i < 0 || j < i {
		t.Errorf("calls = %v: the model must be removed after its last device", log)
	}

	// A device of another protocol never reaches this mapper.
	putDevice(t, db, "other", "opcua", "thermo", "2")
	for _, c := range fm.callLog() {
		if c == "RegisterDevice default/other" || c == "UpdateDevice default/other" {
			t.Errorf("opcua device pushed to the modbus mapper: %v", fm.callLog())
		}
	}

	if err := srv.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Lstat(srv.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestDeviceWaitsForItsModelAndProtocolChangeMovesIt(t *testing.T) {
	dir := shortDir(t)
	db := openStore(t, dir)
	srv := startServer(t, dir, db, newFakeTwins(), nil)
	fm := startFakeMapper(t, filepath.Join(dir, "m.sock"))
	register(t, srv.client, "modbus-mapper", "modbus", fm.addr, true)

	putDevice(t, db, "t1", "modbus", "late", "1")
	putModel(t, db, "late", "C")
	eventually(t, "model then device", func() bool { return fm.device("default/t1") != nil })
	log := fm.callLog()
	if i, j := slices.Index(log, "CreateDeviceModel default/late"), slices.Index(log, "RegisterDevice default/t1"); i < 0 || j < i {
		t.Fatalf("calls = %v, want the model created before the device", log)
	}

	// The device switches to another protocol: this mapper must drop it and its model.
	putDevice(t, db, "t1", "opcua", "late", "1")
	eventually(t, "device and model removed", func() bool {
		return fm.device("default/t1") == nil && !fm.hasModel("default/late")
	})
}

func TestRegisterWithoutDataPushesTheDevices(t *testing.T) {
	dir := shortDir(t)
	db := openStore(t, dir)
	putModel(t, db, "thermo", "C")
	putDevice(t, db, "t1", "modbus", "thermo", "20")
	srv := startServer(t, dir, db, newFakeTwins(), nil)
	fm := startFakeMapper(t, filepath.Join(dir, "m.sock"))
	resp := register(t, srv.client, "modbus-mapper", "modbus", fm.addr, false)
	if len(resp.GetDeviceList())+len(resp.GetModelList()) != 0 {
		t.Fatalf("withData=false answered with data: %v", resp)
	}
	eventually(t, "t1 pushed", func() bool { return fm.device("default/t1") != nil && fm.hasModel("default/thermo") })
}

func TestFailedPushesAreRetriedWithTheCurrentState(t *testing.T) {
	dir := shortDir(t)
	db := openStore(t, dir)
	putModel(t, db, "thermo", "C")
	srv := startServer(t, dir, db, newFakeTwins(), nil)
	fm := startFakeMapper(t, filepath.Join(dir, "m.sock"))
	register(t, srv.client, "modbus-mapper", "modbus", fm.addr, true)

	fm.setFailing(true)
	putDevice(t, db, "t1", "modbus", "thermo", "1")
	eventually(t, "a failed attempt", func() bool { return fm.countCalls("CreateDeviceModel") >= 2 })
	putDevice(t, db, "t1", "modbus", "thermo", "2")
	fm.setFailing(false)
	eventually(t, "t1 pushed after the failures", func() bool { return fm.desiredOf("default/t1", "temp") == "2" })
	if n := fm.countCalls("UpdateDevice default/t1"); n != 0 {
		t.Errorf("%d UpdateDevice calls: the retry should have registered the current state once", n)
	}

	// A mapper that is gone: pushes fail and are retried until it is back.
	fm.gs.Stop()
	putDevice(t, db, "t1", "modbus", "thermo", "3")
	fm2 := startFakeMapper(t, filepath.Join(dir, "m2.sock"))
	if err := os.Rename(fm2.addr, fm.addr); err != nil {
		t.Fatal(err)
	}
	// (Stop may cut off the answer to the last push: fm2 then gets a RegisterDevice rather
	// than an UpdateDevice, either way with the current value.)
	eventually(t, "pushed to the returning mapper", func() bool { return fm2.desiredOf("default/t1", "temp") == "3" })
}

func TestRestartPushesToPersistedMappers(t *testing.T) {
	dir := shortDir(t)
	db := openStore(t, dir)
	putModel(t, db, "thermo", "C")
	putDevice(t, db, "t1", "modbus", "thermo", "20")
	addr := filepath.Join(dir, "m.sock")

	srv := startServer(t, dir, db, newFakeTwins(), nil)
	register(t, srv.client, "Modbus-Mapper", "modbus", addr, true)
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	// The mapper starts empty (it restarted too); the new server pushes from the
	// persisted registration without a MapperRegister.
	fm := startFakeMapper(t, addr)
	srv2 := startServer(t, dir, db, newFakeTwins(), nil)
	eventually(t, "t1 pushed after the restart", func() bool { return fm.device("default/t1") != nil && fm.hasModel("default/thermo") })
	if log := fm.callLog(); !slices.Contains(log, "UpdateDevice default/t1") || !slices.Contains(log, "RegisterDevice default/t1") {
		t.Errorf("calls = %v, want an update that falls back to register", log)
	}

	// Re-registration under the same name (any case) with a new address replaces it.
	fm2 := startFakeMapper(t, filepath.Join(dir, "n.sock"))
	register(t, srv2.client, "modbus-mapper", "modbus", fm2.addr, true)
	putDevice(t, db, "t1", "modbus", "thermo", "21")
	eventually(t, "update at the new address", func() bool { return fm2.countCalls("UpdateDevice default/t1") == 1 })
	objs, err := db.ListLocal(context.Background(), MapperType)
	if err != nil || len(objs) != 1 {
		t.Fatalf("registrations = %v, %v; want one", objs, err)
	}

	// Another mapper for the same protocol replaces it, persisted registration included.
	fm3 := startFakeMapper(t, filepath.Join(dir, "o.sock"))
	register(t, srv2.client, "modbus-2", "modbus", fm3.addr, true)
	objs, err = db.ListLocal(context.Background(), MapperType)
	if err != nil || len(objs) != 1 || objs[0].Key.Name != "modbus-2" {
		t.Fatalf("registrations = %v, %v; want only modbus-2", objs, err)
	}
}

func TestReports(t *testing.T) {
	dir := shortDir(t)
	db := openStore(t, dir)
	putModel(t, db, "thermo", "C")
	putDevice(t, db, "t1", "modbus", "thermo", "20")
	twins := newFakeTwins()
	srv := startServer(t, dir, db, twins, nil)
	ctx := context.Background()

	status1 := &pb.ReportDeviceStatusRequest{DeviceName: "t1", DeviceNamespace: "default", ReportedDevice: &pb.DeviceStatus{Twins: []*pb.Twin{{
		PropertyName:    "temp",
		Reported:        &pb.TwinProperty{Value: "21.5", Metadata: map[string]string{"timestamp": "1", "type": "float"}},
		ObservedDesired: &pb.TwinProperty{Value: "20"},
	}}}}
	// No mapper serves modbus yet.
	if _, err := srv.client.ReportDeviceStatus(ctx, status1); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("report before registration: %v, want FailedPrecondition", err)
	}
	fm := startFakeMapper(t, filepath.Join(dir, "m.sock"))
	register(t, srv.client, "modbus-mapper", "modbus", fm.addr, true)

	if _, err := srv.client.ReportDeviceStatus(ctx, status1); err != nil {
		t.Fatal(err)
	}
	twins.mu.Lock()
	got := twins.reports["default/t1"]
	twins.mu.Unlock()
	if len(got) != 1 || got[0].Property != "temp" || got[0].Reported.Value != "21.5" || got[0].Reported.Metadata["type"] != "float" ||
		got[0].ObservedDesired.Value != "20" {
		t.Fatalf("reports = %+v", got)
	}

	if _, err := srv.client.ReportDeviceStates(ctx, &pb.ReportDeviceStatesRequest{DeviceName: "t1", State: "Online"}); err != nil {
		t.Fatal(err)
	}
	twins.mu.Lock()
	state := twins.states["default/t1"]
	twins.mu.Unlock()
	if state != "online" {
		t.Errorf("state = %q, want online (namespace defaulted, case folded)", state)
	}

	// The twin's refusals map to codes: bad input, gone, or a failure worth a retry.
	for _, c := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf(`%w: value "x" is not a finite number`, devicetwin.ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("%w: device default/t1", devicetwin.ErrNotFound), codes.NotFound},
		{errors.New("store: disk full"), codes.Unavailable},
	} {
		twins.mu.Lock()
		twins.err = c.err
		twins.mu.Unlock()
		if _, err := srv.client.ReportDeviceStatus(ctx, status1); status.Code(err) != c.want {
			t.Errorf("twin refusal %v: %v, want %s", c.err, err, c.want)
		}
	}
}

func TestBadRequests(t *testing.T) {
	dir := shortDir(t)
	db := openStore(t, dir)
	putModel(t, db, "thermo", "C")
	putDevice(t, db, "t1", "modbus", "thermo", "20")
	srv := startServer(t, dir, db, newFakeTwins(), nil)
	register(t, srv.client, "modbus-mapper", "modbus", filepath.Join(dir, "m.sock"), false)
	ctx := context.Background()
	long := string(make([]byte, 300))

	info := func(mod func(*pb.MapperInfo)) *pb.MapperRegisterRequest {
		i := &pb.MapperInfo{Name: "m", Protocol: "modbus", Address: []byte("/run/m.sock")}
		mod(i)
		return &pb.MapperRegisterRequest{Mapper: i}
	}
	for name, req := range map[string]*pb.MapperRegisterRequest{
		"no mapper":         {},
		"no name":           info(func(i *pb.MapperInfo) { i.Name = "" }),
		"bad name":          info(func(i *pb.MapperInfo) { i.Name = "a/b" }),
		"long name":         info(func(i *pb.MapperInfo) { i.Name = "a" + string(make([]byte, 70)) }),
		"no protocol":       info(func(i *pb.MapperInfo) { i.Protocol = "" }),
		"protocol spaces":   info(func(i *pb.MapperInfo) { i.Protocol = "mod bus" }),
		"no address":        info(func(i *pb.MapperInfo) { i.Address = nil }),
		"relative address":  info(func(i *pb.MapperInfo) { i.Address = []byte("m.sock") }),
		"long address":      info(func(i *pb.MapperInfo) { i.Address = []byte("/" + long) }),
		"NUL in address":    info(func(i *pb.MapperInfo) { i.Address = []byte("/run/m\x00.sock") }),
		"invalid UTF-8":     info(func(i *pb.MapperInfo) { i.Address = []byte("/run/\xff") }),
		"long version":      info(func(i *pb.MapperInfo) { i.Version = long }),
		"control api_vers.": info(func(i *pb.MapperInfo) { i.ApiVersion = "v1\n" }),
	} {
		if _, err := srv.client.MapperRegister(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("MapperRegister %s: %v, want InvalidArgument", name, err)
		}
	}

	twin := func(mod func(*pb.Twin)) *pb.ReportDeviceStatusRequest {
		tw := &pb.Twin{PropertyName: "temp", Reported: &pb.TwinProperty{Value: "1"}}
		mod(tw)
		return &pb.ReportDeviceStatusRequest{DeviceName: "t1", DeviceNamespace: "default", ReportedDevice: &pb.DeviceStatus{Twins: []*pb.Twin{tw}}}
	}
	manyMeta := map[string]string{}
	for i := range 40 {
		manyMeta[string(rune('a'+i))] = "v"
	}
	tooMany := &pb.ReportDeviceStatusRequest{DeviceName: "t1", ReportedDevice: &pb.DeviceStatus{}}
	for range MaxTwins + 1 {
		tooMany.ReportedDevice.Twins = append(tooMany.ReportedDevice.Twins, &pb.Twin{PropertyName: "temp"})
	}
	for name, c := range map[string]struct {
		req  *pb.ReportDeviceStatusRequest
		code codes.Code
	}{
		"no name":          {&pb.ReportDeviceStatusRequest{ReportedDevice: &pb.DeviceStatus{}}, codes.InvalidArgument},
		"bad name":         {&pb.ReportDeviceStatusRequest{DeviceName: "T_1", ReportedDevice: &pb.DeviceStatus{}}, codes.InvalidArgument},
		"bad namespace":    {&pb.ReportDeviceStatusRequest{DeviceName: "t1", DeviceNamespace: "a.b", ReportedDevice: &pb.DeviceStatus{}}, codes.InvalidArgument},
		"no status":        {&pb.ReportDeviceStatusRequest{DeviceName: "t1"}, codes.InvalidArgument},
		"unknown device":   {&pb.ReportDeviceStatusRequest{DeviceName: "nope", ReportedDevice: &pb.DeviceStatus{}}, codes.NotFound},
		"too many twins":   {tooMany, codes.InvalidArgument},
		"no property":      {twin(func(tw *pb.Twin) { tw.PropertyName = "" }), codes.InvalidArgument},
		"unknown property": {twin(func(tw *pb.Twin) { tw.PropertyName = "humidity" }), codes.InvalidArgument},
		"no values":        {twin(func(tw *pb.Twin) { tw.Reported = nil }), codes.InvalidArgument},
		"huge value":       {twin(func(tw *pb.Twin) { tw.Reported.Value = string(make([]byte, MaxValueBytes+1)) }), codes.InvalidArgument},
		"many metadata":    {twin(func(tw *pb.Twin) { tw.Reported.Metadata = manyMeta }), codes.InvalidArgument},
		"empty meta key":   {twin(func(tw *pb.Twin) { tw.ObservedDesired = &pb.TwinProperty{Metadata: map[string]string{"": "x"}} }), codes.InvalidArgument},
	} {
		if _, err := srv.client.ReportDeviceStatus(ctx, c.req); status.Code(err) != c.code {
			t.Errorf("ReportDeviceStatus %s: %v, want %s", name, err, c.code)
		}
	}
	dup := twin(func(*pb.Twin) {})
	dup.ReportedDevice.Twins = append(dup.ReportedDevice.Twins, dup.ReportedDevice.Twins[0])
	if _, err := srv.client.ReportDeviceStatus(ctx, dup); status.Code(err) != codes.InvalidArgument {
		t.Errorf("duplicate twin: %v, want InvalidArgument", err)
	}

	for name, c := range map[string]struct {
		req  *pb.ReportDeviceStatesRequest
		code codes.Code
	}{
		"no name":        {&pb.ReportDeviceStatesRequest{State: "ok"}, codes.InvalidArgument},
		"bad state":      {&pb.ReportDeviceStatesRequest{DeviceName: "t1", State: "rebooting"}, codes.InvalidArgument},
		"empty state":    {&pb.ReportDeviceStatesRequest{DeviceName: "t1"}, codes.InvalidArgument},
		"unknown device": {&pb.ReportDeviceStatesRequest{DeviceName: "nope", State: "ok"}, codes.NotFound},
	} {
		if _, err := srv.client.ReportDeviceStates(ctx, c.req); status.Code(err) != c.code {
			t.Errorf("ReportDeviceStates %s: %v, want %s", name, err, c.code)
		}
	}

	// A message above the receive limit is refused by gRPC itself.
	big := twin(func(tw *pb.Twin) { tw.Reported.Value = string(make([]byte, 5<<20)) })
	if _, err := srv.client.ReportDeviceStatus(ctx, big); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("5 MiB request: %v, want ResourceExhausted", err)
	}
}

func TestRateLimitAndRecover(t *testing.T) {
	dir := shortDir(t)
	db := openStore(t, dir)
	putModel(t, db, "thermo", "C")
	putDevice(t, db, "t1", "modbus", "thermo", "20")
	twins := newFakeTwins()
	srv := startServer(t, dir, db, twins, func(c *Config) { c.RequestsPerSecond, c.Burst = 0.001, 2 })
	ctx := context.Background()
	register(t, srv.client, "modbus-mapper", "modbus", filepath.Join(dir, "m.sock"), false)

	twins.mu.Lock()
	twins.panicky = true
	twins.mu.Unlock()
	if _, err := srv.client.ReportDeviceStates(ctx, &pb.ReportDeviceStatesRequest{DeviceName: "t1", State: "ok"}); status.Code(err) != codes.Internal {
		t.Fatalf("panicking handler: %v, want Internal", err)
	}
	if n := srv.s.Panics(); n != 1 {
		t.Errorf("Panics() = %d, want 1", n)
	}
	if _, err := srv.client.ReportDeviceStates(ctx, &pb.ReportDeviceStatesRequest{DeviceName: "t1", State: "ok"}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("request over the limit: %v, want ResourceExhausted", err)
	}
}

func TestSocketSetup(t *testing.T) {
	dir := shortDir(t)
	db := openStore(t, dir)

	// A regular file in the socket's place is never removed.
	sub := filepath.Join(dir, "sub", "dir")
	path := filepath.Join(sub, "dmi.sock")
	if err := os.MkdirAll(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(withSocket(path), Deps{Store: db, Twins: newFakeTwins(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("Run replaced a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "x" {
		t.Fatal("the regular file was changed")
	}
	os.Remove(path)

	// A socket someone serves on is not taken over.
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := New(withSocket(path), Deps{Store: db, Twins: newFakeTwins(), Logger: quietLog()})
	if err := s2.Run(context.Background()); err == nil {
		t.Fatal("Run took over a socket in use")
	}
	// A stale socket (nobody listening) is replaced; the parent directory is created.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("stale socket missing: %v", err)
	}
	os.RemoveAll(filepath.Join(dir, "sub"))
	l2, err := listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode = %v, %v; want 0660", fi.Mode(), err)
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o750 {
		t.Fatalf("directory mode = %v, %v; want 0750", di.Mode(), err)
	}
	l2.Close()
	// Stale: created, listener closed without unlinking.
	l3, err := net.Listen("unix", filepath.Join(dir, "stale.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l3.(*net.UnixListener).SetUnlinkOnClose(false)
	l3.Close()
	l4, err := listen(filepath.Join(dir, "stale.sock"), strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	fi, err = os.Lstat(filepath.Join(dir, "stale.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Gid) != os.Getgid() {
		t.Errorf("socket group = %d, want %d", st.Gid, os.Getgid())
	}
	l4.Close()
	if _, err := listen(filepath.Join(dir, "g.sock"), "no-such-group-skerry"); err == nil {
		t.Error("an unknown socket group was accepted")
	}
}

func withSocket(path string) Config {
	c := DefaultConfig()
	c.Socket = path
	return c
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"relative socket": func(c *Config) { c.Socket = "dmi.sock" },
		"long socket":     func(c *Config) { c.Socket = "/" + string(make([]byte, 200)) },
		"tiny message":    func(c *Config) { c.MaxRecvMsgSize = 10 },
		"no streams":      func(c *Config) { c.MaxConcurrentStreams = 0 },
		"no rate":         func(c *Config) { c.RequestsPerSecond = 0 },
		"no timeout":      func(c *Config) { c.CallTimeout = 0 },
		"retry order":     func(c *Config) { c.RetryMax = c.RetryMin / 2 },
	} {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRelistConvergesWithoutEvents drives the cache by relisting only (what the server does
// when its watch falls behind or the change log is compacted): devices added, changed and
// removed between two lists all reach the mapper, removals included.
func TestRelistConvergesWithoutEvents(t *testing.T) {
	dir := shortDir(t)
	db := openStore(t, dir)
	putModel(t, db, "thermo", "C")
	s, err := New(withSocket("/nonexistent/dmi.sock"), Deps{Store: db, Twins: newFakeTwins(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.RetryMin, s.cfg.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	s.ctx = ctx // as Run sets it, without Run's watch
	t.Cleanup(func() {
		cancel()
		s.stopMappers()
	})
	relist := func() {
		t.Helper()
		if _, err := s.relist(ctx); err != nil {
			t.Fatal(err)
		}
	}
	relist()
	fm := startFakeMapper(t, filepath.Join(dir, "m.sock"))
	h := &handler{s: s}
	if _, err := h.MapperRegister(ctx, &pb.MapperRegisterRequest{WithData: true, Mapper: &pb.MapperInfo{
		Name: "m", Protocol: "modbus", Address: []byte(fm.addr)}}); err != nil {
		t.Fatal(err)
	}

	const n = 20
	for i := range n {
		putDevice(t, db, fmt.Sprintf("d%02d", i), "modbus", "thermo", "1")
	}
	relist()
	eventually(t, "all devices pushed", func() bool {
		fm.mu.Lock()
		defer fm.mu.Unlock()
		return len(fm.devices) == n
	})
	putDevice(t, db, "d00", "modbus", "thermo", "2")
	for i := 1; i < n; i++ {
		deleteObj(t, db, wire.TypeDevice, "default", fmt.Sprintf("d%02d", i))
	}
	relist()
	eventually(t, "d00 updated, the others removed", func() bool {
		fm.mu.Lock()
		defer fm.mu.Unlock()
		return len(fm.devices) == 1 && fm.devices["default/d00"].GetSpec().GetProperties()[0].GetDesired().GetValue() == "2"
	})
	deleteObj(t, db, wire.TypeDevice, "default", "d00")
	relist()
	eventually(t, "device and model removed", func() bool {
		fm.mu.Lock()
		defer fm.mu.Unlock()
		return len(fm.devices) == 0 && len(fm.models) == 0
	})
}
