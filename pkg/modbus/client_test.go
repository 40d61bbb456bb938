package modbus

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startServer serves a fresh bank on a loopback port until the test ends.
func startServer(t *testing.T, opts ServerOptions) (*Server, string) {
	t.Helper()
	bank, err := NewBank(DefaultBankSizes)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(bank, opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, l.Addr().String()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientServerTables(t *testing.T) {
	srv, addr := startServer(t, ServerOptions{UnitID: 1})
	ctx := testCtx(t)
	c, err := Dial(ctx, addr, Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := srv.Bank()
	if err := b.SetBits(DiscreteInputs, 10, true, false, true); err != nil {
		t.Fatal(err)
	}
	if err := b.SetRegisters(InputRegisters, 1000, 7, 65535); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ReadDiscreteInputs(ctx, 10, 3); err != nil || !slices.Equal(got, []bool{true, false, true}) {
		t.Fatalf("discrete %v, %v", got, err)
	}
	if got, err := c.ReadInputRegisters(ctx, 1000, 2); err != nil || !slices.Equal(got, []uint16{7, 65535}) {
		t.Fatalf("input %v, %v", got, err)
	}
	if err := c.WriteSingleCoil(ctx, 3, true); err != nil {
		t.Fatal(err)
	}
	coils := []bool{true, true, false, true, false, false, false, false, true}
	if err := c.WriteMultipleCoils(ctx, 100, coils); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ReadCoils(ctx, 100, len(coils)); err != nil || !slices.Equal(got, coils) {
		t.Fatalf("coils %v, %v", got, err)
	}
	if got, _ := b.Bits(Coils, 3, 1); !got[0] {
		t.Fatal("single coil not set in the bank")
	}
	if err := c.WriteSingleRegister(ctx, 5, 0xBEEF); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMultipleRegisters(ctx, 6, []uint16{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ReadHoldingRegisters(ctx, 5, 4); err != nil || !slices.Equal(got, []uint16{0xBEEF, 1, 2, 3}) {
		t.Fatalf("holding %v, %v", got, err)
	}
	// The largest reads the specification allows.
	if _, err := c.ReadHoldingRegisters(ctx, 0, MaxReadRegisters); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadCoils(ctx, 0, 1024); err != nil {
		t.Fatal(err)
	}
}

func TestServerExceptions(t *testing.T) {
	_, addr := startServer(t, ServerOptions{UnitID: 1})
	ctx := testCtx(t)
	c := NewTCPClient(addr, Options{})
	defer c.Close()
	wantEx := func(err error, code ExceptionCode) {
		t.Helper()
		var ex *ExceptionError
		if !errors.As(err, &ex) || ex.Code != code {
			t.Fatalf("err %v, want exception %s", err, code)
		}
	}
	_, err := c.ReadHoldingRegisters(ctx, 1020, 5)
	wantEx(err, ExceptionIllegalDataAddress)
	wantEx(c.WriteSingleCoil(ctx, 5000, true), ExceptionIllegalDataAddress)
	resp, err := c.Send(ctx, PDU{Function: 0x2B, Data: []byte{0x0E, 1, 0}})
	if err != nil {
		t.Fatal(err)
	}
	wantEx(DecodeWriteResponse(PDU{Function: 0x2B}, resp), ExceptionIllegalFunction)
	// A quantity the client refuses to send: the server must refuse it too.
	resp, err = c.Send(ctx, PDU{Function: FuncReadHoldingRegisters, Data: []byte{0, 0, 0, 126}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = DecodeRegistersResponse(PDU{Function: FuncReadHoldingRegisters}, 126, resp)
	wantEx(err, ExceptionIllegalDataValue)
	// Another unit behind this "gateway".
	other := NewTCPClient(addr, Options{UnitID: 9})
	defer other.Close()
	_, err = other.ReadCoils(ctx, 0, 1)
	wantEx(err, ExceptionGatewayTargetDeviceFailedToRespond)
}

func TestClientConcurrent(t *testing.T) {
	srv, addr := startServer(t, ServerOptions{})
	ctx := testCtx(t)
	c := NewTCPClient(addr, Options{})
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				v := uint16(i*100 + j)
				if err := c.WriteSingleRegister(ctx, uint16(i), v); err != nil {
					errs <- err
					return
				}
				got, err := c.ReadHoldingRegisters(ctx, uint16(i), 1)
				if err != nil || got[0] != v {
					errs <- errors.Join(err, errors.New("read back mismatch"))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if v, _ := srv.Bank().Registers(HoldingRegisters, 7, 1); v[0] != 719 {
		t.Fatalf("register 7 = %d", v[0])
	}
}

// fakeDevice accepts connections and hands each to handle.
func fakeDevice(t *testing.T, handle func(n int, conn net.Conn)) (addr string, accepted *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int32)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			n := int(accepted.Add(1))
			wg.Go(func() {
				defer conn.Close()
				handle(n, conn)
			})
		}
	})
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().String(), accepted
}

func answer(conn net.Conn, f TCPFrame) {
	resp := HandleRequest(mustBank(), f.PDU)
	b, _ := AppendTCPFrame(nil, TCPFrame{Transaction: f.Transaction, Unit: f.Unit, PDU: resp})
	_, _ = conn.Write(b)
}

func mustBank() *Bank {
	b, _ := NewBank(BankSizes{HoldingRegisters: 10})
	_ = b.SetRegisters(HoldingRegisters, 0, 42)
	return b
}

func TestClientReconnectsAfterDrop(t *testing.T) {
	addr, accepted := fakeDevice(t, func(n int, conn net.Conn) {
		for {
			f, err := ReadTCPFrame(conn)
			if err != nil || n == 1 {
				return // the first connection dies without answering
			}
			answer(conn, f)
		}
	})
	ctx := testCtx(t)
	c := NewTCPClient(addr, Options{Timeout: 2 * time.Second})
	defer c.Close()
	got, err := c.ReadHoldingRegisters(ctx, 0, 1)
	if err != nil || got[0] != 42 {
		t.Fatalf("%v, %v", got, err)
	}
	if n := accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestClientDiscardsStaleReplies(t *testing.T) {
	addr, _ := fakeDevice(t, func(_ int, conn net.Conn) {
		for {
			f, err := ReadTCPFrame(conn)
			if err != nil {
				return
			}
			// A late answer to an earlier transaction, then the real one.
			stale := f
			stale.Transaction--
			stale.PDU = PDU{FuncReadHoldingRegisters, []byte{2, 0, 99}}
			b, _ := AppendTCPFrame(nil, stale)
			_, _ = conn.Write(b)
			answer(conn, f)
		}
	})
	ctx := testCtx(t)
	c := NewTCPClient(addr, Options{})
	defer c.Close()
	for range 3 {
		got, err := c.ReadHoldingRegisters(ctx, 0, 1)
		if err != nil || got[0] != 42 {
			t.Fatalf("%v, %v", got, err)
		}
	}
}

func TestClientTimeoutAndRetries(t *testing.T) {
	addr, accepted := fakeDevice(t, func(_ int, conn net.Conn) {
		_, _ = io.Copy(io.Discard, conn) // never answers
	})
	ctx := testCtx(t)
	c := NewTCPClient(addr, Options{Timeout: 50 * time.Millisecond, Retries: 2})
	defer c.Close()
	start := time.Now()
	_, err := c.ReadCoils(ctx, 0, 1)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err %v, want a timeout", err)
	}
	if n := accepted.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (1 try + 2 retries)", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	// A cancelled context ends the request early.
	cctx, cancel := context.WithCancel(ctx)
	c2 := NewTCPClient(addr, Options{Timeout: time.Minute})
	defer c2.Close()
	go func() {
		// Cancel once the request is in flight (the device has accepted its connection).
		for deadline := time.Now().Add(5 * time.Second); accepted.Load() < 4 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if _, err := c2.ReadCoils(cctx, 0, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestClientMalformedReply(t *testing.T) {
	addr, _ := fakeDevice(t, func(_ int, conn net.Conn) {
		if _, err := ReadTCPFrame(conn); err != nil {
			return
		}
		_, _ = conn.Write([]byte{0, 1, 0, 0, 0xFF, 0xFF, 1, 3}) // length far too big
		_, _ = io.Copy(io.Discard, conn)
	})
	c := NewTCPClient(addr, Options{Retries: -1})
	defer c.Close()
	if _, err := c.ReadHoldingRegisters(testCtx(t), 0, 1); !errors.Is(err, ErrProtocol) {
		t.Fatalf("err %v, want a protocol error", err)
	}
	if _, err := c.ReadHoldingRegisters(testCtx(t), 0, 1); err == nil {
		t.Fatal("no error")
	}
	c.Close()
	if _, err := c.ReadHoldingRegisters(testCtx(t), 0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestRTUClientServer(t *testing.T) {
	bank, _ := NewBank(DefaultBankSizes)
	srv := NewServer(bank, ServerOptions{UnitID: 5})
	var wg sync.WaitGroup
	defer func() { srv.Close(); wg.Wait() }()
	dials := 0
	dial := func(context.Context) (io.ReadWriteCloser, error) {
		dials++
		a, b := net.Pipe()
		wg.Go(func() { _ = srv.ServeRTU(b) })
		return a, nil
	}
	ctx := testCtx(t)
	c := NewClient(dial, FramingRTU, Options{UnitID: 5})
	defer c.Close()
	if err := c.WriteMultipleRegisters(ctx, 10, []uint16{1, 2}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ReadHoldingRegisters(ctx, 10, 2); err != nil || !slices.Equal(got, []uint16{1, 2}) {
		t.Fatalf("%v, %v", got, err)
	}
	if err := c.WriteMultipleCoils(ctx, 1, []bool{true, false, true}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ReadCoils(ctx, 1, 3); err != nil || !slices.Equal(got, []bool{true, false, true}) {
		t.Fatalf("%v, %v", got, err)
	}
	var ex *ExceptionError
	if _, err := c.ReadInputRegisters(ctx, 2000, 1); !errors.As(err, &ex) {
		t.Fatalf("err %v, want an exception", err)
	}
	// The device does not answer another address: the request times out.
	other := NewClient(dial, FramingRTU, Options{UnitID: 6, Timeout: 50 * time.Millisecond, Retries: -1})
	defer other.Close()
	if _, err := other.ReadCoils(ctx, 0, 1); err == nil {
		t.Fatal("answered for another address")
	}
	if dials != 2 {
		t.Fatalf("%d dials, want 2", dials)
	}
}
