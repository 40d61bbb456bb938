package dmi

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/skerry-io/skerry/api/dmi/v1beta1"
)

// FuzzRequests builds each RPC's request from arbitrary wire bytes and calls the handler
// directly: whatever a client sends, the answer is a response or a status error with a
// client-side code, never a panic.
func FuzzRequests(f *testing.F) {
	seed := func(rpc byte, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{rpc}, b...))
	}
	seed(0, &pb.MapperRegisterRequest{WithData: true, Mapper: &pb.MapperInfo{Name: "m", Protocol: "modbus", Address: []byte("/run/m.sock")}})
	seed(0, &pb.MapperRegisterRequest{Mapper: &pb.MapperInfo{Name: "M.x", Protocol: "opcua", Address: []byte("unix:///a")}})
	seed(1, &pb.ReportDeviceStatusRequest{DeviceName: "t1", DeviceNamespace: "default", ReportedDevice: &pb.DeviceStatus{Twins: []*pb.Twin{
		{PropertyName: "temp", Reported: &pb.TwinProperty{Value: "1", Metadata: map[string]string{"timestamp": "1"}}},
	}}})
	seed(1, &pb.ReportDeviceStatusRequest{DeviceName: "t1", ReportedDevice: &pb.DeviceStatus{Twins: []*pb.Twin{{PropertyName: "x"}}}})
	seed(2, &pb.ReportDeviceStatesRequest{DeviceName: "t1", DeviceNamespace: "default", State: "online"})
	seed(2, &pb.ReportDeviceStatesRequest{DeviceName: "nope", State: "bogus"})
	f.Add([]byte{1, 0xff, 0xff})

	dir := f.TempDir()
	db := openStoreF(f, dir)
	putModelF(f, db)
	s, err := New(withSocket("/nonexistent/dmi.sock"), Deps{Store: db, Twins: newFakeTwins(), Logger: quietLog()})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := s.relist(context.Background()); err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.ctx = ctx // as Run sets it; workers push to sockets that do not exist
	f.Cleanup(func() {
		cancel()
		s.stopMappers()
	})
	h := &handler{s: s}
	if _, err := h.MapperRegister(ctx, &pb.MapperRegisterRequest{Mapper: &pb.MapperInfo{Name: "m", Protocol: "modbus", Address: []byte("/run/m.sock")}}); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		var err error
		switch data[0] % 3 {
		case 0:
			req := &pb.MapperRegisterRequest{}
			if proto.Unmarshal(data[1:], req) != nil {
				return
			}
			_, err = h.MapperRegister(ctx, req)
		case 1:
			req := &pb.ReportDeviceStatusRequest{}
			if proto.Unmarshal(data[1:], req) != nil {
				return
			}
			_, err = h.ReportDeviceStatus(ctx, req)
		case 2:
			req := &pb.ReportDeviceStatesRequest{}
			if proto.Unmarshal(data[1:], req) != nil {
				return
			}
			_, err = h.ReportDeviceStates(ctx, req)
		}
		switch c := status.Code(err); c {
		case codes.OK, codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		default:
			t.Fatalf("code %s: %v", c, err)
		}
		if err != nil && len(err.Error()) > 1024 {
			t.Fatalf("unbounded error message (%d bytes)", len(err.Error()))
		}
	})
}
