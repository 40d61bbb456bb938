package eventbus

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func TestInternalAppAndEdgecoreExchangeMessages(t *testing.T) {
	b := startBus(t, internalConfig())
	url := "tcp://" + b.InternalAddr()

	// DeviceTwin-like handler: answers each update on .../result, from inside the handler.
	got := newRecorder()
	unsub, err := b.Subscribe("$hw/events/device/+/+/twin/update", func(ctx context.Context, m Message) {
		got.handle(ctx, m)
		if err := b.Publish(ctx, Message{Topic: m.Topic + "/result", Payload: []byte(`{"ok":true}`)}); err != nil {
			t.Errorf("publish from handler: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	app := appClient(t, url, "app-1", nil)
	results := newRecorder()
	mustToken(t, "app subscribe", app.Subscribe("$hw/events/device/+/+/twin/update/result", 1, results.pahoHandler))
	mustToken(t, "app publish", app.Publish("$hw/events/device/default/thermo-1/twin/update", 1, false, `{"event_id":"e1"}`))

	ms := got.waitN(t, 1)
	if ms[0].Topic != "$hw/events/device/default/thermo-1/twin/update" || string(ms[0].Payload) != `{"event_id":"e1"}` {
		t.Errorf("handler got %q %q", ms[0].Topic, ms[0].Payload)
	}
	rs := results.waitN(t, 1)
	if rs[0].Topic != "$hw/events/device/default/thermo-1/twin/update/result" || string(rs[0].Payload) != `{"ok":true}` {
		t.Errorf("app got %q %q", rs[0].Topic, rs[0].Payload)
	}
	// The app may see the result before the handler's Publish returned and counted it.
	waitFor(t, "1 published, 1 delivered, 1 client", func() bool {
		st := b.Stats()
		return st.Published == 1 && st.Delivered == 1 && st.InternalClients == 1
	})
}

func TestInternalRetainedMessageReachesLaterSubscriber(t *testing.T) {
	b := startBus(t, internalConfig())
	if err := b.Publish(context.Background(), Message{Topic: "$hw/events/device/default/d/updated", Payload: []byte("r"), Retained: true}); err != nil {
		t.Fatal(err)
	}
	app := appClient(t, "tcp://"+b.InternalAddr(), "mapper", nil)
	rec := newRecorder()
	mustToken(t, "subscribe", app.Subscribe("$hw/events/device/+/+/updated", 0, rec.pahoHandler))
	if ms := rec.waitN(t, 1); string(ms[0].Payload) != "r" || !ms[0].Retained {
		t.Errorf("got %+v, want the retained message", ms[0])
	}
}

func TestInternalOversizeDroppedForEveryone(t *testing.T) {
	cfg := internalConfig()
	cfg.MaxPayloadBytes = 1024
	b := startBus(t, cfg)
	url := "tcp://" + b.InternalAddr()

	mine := newRecorder()
	unsub, err := b.Subscribe("big/#", mine.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	other := newRecorder()
	sub := appClient(t, url, "other", nil)
	mustToken(t, "subscribe", sub.Subscribe("big/#", 1, other.pahoHandler))

	app := appClient(t, url, "app", nil)
	mustToken(t, "publish big", app.Publish("big/1", 1, false, bytes.Repeat([]byte("x"), 1025)))
	mustToken(t, "publish small", app.Publish("big/2", 1, false, bytes.Repeat([]byte("x"), 1024)))
	// Messages of one client are handled in order: once big/2 is in, big/1 was dropped.
	for name, r := range map[string]*recorder{"handler": mine, "other app": other} {
		r.waitN(t, 1)
		if ms := r.messages(); len(ms) != 1 || ms[0].Topic != "big/2" {
			t.Errorf("%s got %d messages (first %q), want only big/2", name, len(ms), ms[0].Topic)
		}
	}
	if n := b.Stats().DroppedOversize; n != 1 {
		t.Errorf("DroppedOversize = %d, want 1", n)
	}
	if !app.IsConnectionOpen() {
		t.Error("app was disconnected for a payload under the packet limit")
	}

	err = b.Publish(context.Background(), Message{Topic: "big/3", Payload: make([]byte, 1025)})
	if !errors.Is(err, ErrPayloadTooLarge) {
		t.Errorf("Publish of 1025 bytes: %v, want ErrPayloadTooLarge", err)
	}
}

func TestInternalUnsubscribe(t *testing.T) {
	b := startBus(t, internalConfig())
	first, second := newRecorder(), newRecorder()
	unsub1, err := b.Subscribe("a/b", first.handle)
	if err != nil {
		t.Fatal(err)
	}
	unsub2, err := b.Subscribe("a/b", second.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub2()
	ctx := context.Background()
	if err := b.Publish(ctx, Message{Topic: "a/b", Payload: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	first.waitN(t, 1)
	second.waitN(t, 1)
	unsub1()
	unsub1() // twice is harmless
	if err := b.Publish(ctx, Message{Topic: "a/b", Payload: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	second.waitN(t, 2)
	if n := len(first.messages()); n != 1 {
		t.Errorf("unsubscribed handler got %d messages, want 1", n)
	}
}

func TestLifecycleErrors(t *testing.T) {
	b, err := New(internalConfig(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Publish(ctx, Message{Topic: "a"}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Publish before Run: %v, want ErrNotRunning", err)
	}
	for _, f := range []string{"", "a/#/b", "a+", "$share/g/a", "a\x00"} {
		if _, err := b.Subscribe(f, func(context.Context, Message) {}); err == nil {
			t.Errorf("Subscribe(%q) accepted", f)
		}
	}
	if err := b.Publish(ctx, Message{Topic: "a/+"}); err == nil {
		t.Error("Publish on a wildcard topic accepted")
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	<-b.Ready()
	if err := b.Run(ctx); err == nil {
		t.Error("second Run accepted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, Message{Topic: "a"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Run: %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe("a", func(context.Context, Message) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Run: %v, want ErrClosed", err)
	}
}

func TestInternalListenFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := Default()
	cfg.Internal.Address = l.Addr().String()
	b, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := b.Run(ctx); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Run on a taken address: %v, want a listen error", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run waited for ctx instead of failing at once")
	}
}

// TestInternalMQTT5Client speaks MQTT 5 by hand (paho.mqtt.golang is 3.1.1 only): connect,
// subscribe, receive edgecore's publish, publish to edgecore, and see an oversize QoS 1
// publish refused in its PUBACK.
func TestInternalMQTT5Client(t *testing.T) {
	cfg := internalConfig()
	cfg.MaxPayloadBytes = 100
	b := startBus(t, cfg)
	got := newRecorder()
	unsub, err := b.Subscribe("v5/in", got.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	conn, err := net.DialTimeout("tcp", b.InternalAddr(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testTimeout))
	r := bufio.NewReader(conn)
	write := func(typ byte, body []byte) {
		t.Helper()
		if _, err := conn.Write(append(append([]byte{typ}, varint(len(body))...), body...)); err != nil {
			t.Fatal(err)
		}
	}

	// CONNECT: "MQTT", version 5, clean start, keepalive 60, no properties, client id "v5".
	write(0x10, cat([]byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0}, str("v5")))
	if typ, body := readPacket(t, r); typ != 0x20 || len(body) < 2 || body[1] != 0 {
		t.Fatalf("CONNACK: type %#x body %x, want success", typ, body)
	}
	// SUBSCRIBE id 1, no properties, "v5/out" with options 0.
	write(0x82, cat([]byte{0, 1, 0}, str("v5/out"), []byte{0}))
	if typ, body := readPacket(t, r); typ != 0x90 || len(body) < 4 || body[3] != 0 {
		t.Fatalf("SUBACK: type %#x body %x, want granted QoS 0", typ, body)
	}
	if err := b.Publish(context.Background(), Message{Topic: "v5/out", Payload: []byte("hello v5")}); err != nil {
		t.Fatal(err)
	}
	typ, body := readPacket(t, r)
	topic := str("v5/out")
	// topic, properties (the broker may add some; their length is < 128 here), payload
	if typ&0xf0 != 0x30 || !bytes.HasPrefix(body, topic) || len(body) <= len(topic) ||
		!bytes.Equal(body[len(topic)+1+int(body[len(topic)]):], []byte("hello v5")) {
		t.Fatalf("PUBLISH to v5 client: type %#x body %q", typ, body)
	}

	// QoS 0 PUBLISH "v5/in", no properties.
	write(0x30, cat(str("v5/in"), []byte{0}, []byte("from v5")))
	if ms := got.waitN(t, 1); string(ms[0].Payload) != "from v5" {
		t.Errorf("handler got %q", ms[0].Payload)
	}
	// QoS 1 PUBLISH id 7 over the limit: PUBACK with reason 0x95 (packet too large).
	write(0x32, cat(str("v5/in"), []byte{0, 7, 0}, bytes.Repeat([]byte("x"), 101)))
	if typ, body := readPacket(t, r); typ != 0x40 || len(body) < 3 || body[2] != 0x95 {
		t.Fatalf("PUBACK for oversize: type %#x body %x, want reason 0x95", typ, body)
	}
	if n := len(got.messages()); n != 1 {
		t.Errorf("handler got %d messages, want 1", n)
	}
}

func TestInternalPacketOverLimitDisconnects(t *testing.T) {
	cfg := internalConfig()
	cfg.MaxPayloadBytes = 10
	b := startBus(t, cfg)
	app := appClient(t, "tcp://"+b.InternalAddr(), "huge", func(o *paho.ClientOptions) {})
	app.Publish("t", 0, false, make([]byte, 10+packetOverhead+1))
	waitFor(t, "the broker to drop the client", func() bool { return b.Stats().InternalClients == 0 })
}

func readPacket(t *testing.T, r *bufio.Reader) (byte, []byte) {
	t.Helper()
	typ, err := r.ReadByte()
	if err != nil {
		t.Fatalf("read packet: %v", err)
	}
	n, shift := 0, 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			t.Fatalf("read length: %v", err)
		}
		n |= int(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
		shift += 7
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("read body: %v", err)
	}
	return typ, body
}

func varint(n int) []byte {
	var out []byte
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		out = append(out, c)
		if n == 0 {
			return out
		}
	}
}

func str(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
