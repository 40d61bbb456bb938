package eventbus

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const testTimeout = 10 * time.Second

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// startBus runs a bus until the test ends and waits until it is ready.
func startBus(t *testing.T, cfg Config) *EventBus {
	t.Helper()
	return startBusLog(t, cfg, testLogger(t))
}

// startBusLog is startBus with the bus logging to log.
func startBusLog(t *testing.T, cfg Config, log *slog.Logger) *EventBus {
	t.Helper()
	b, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(testTimeout):
			t.Errorf("Run did not return within %s of cancel", testTimeout)
		}
	})
	select {
	case <-b.Ready():
	case err := <-errc:
		t.Fatalf("Run: %v", err)
	case <-time.After(testTimeout):
		t.Fatal("bus not ready")
	}
	return b
}

func internalConfig() Config {
	cfg := Default()
	cfg.Internal.Address = "127.0.0.1:0"
	return cfg
}

// recorder collects the messages a handler gets.
type recorder struct {
	mu   sync.Mutex
	msgs []Message
	ch   chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1)} }

func (r *recorder) handle(_ context.Context, m Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *recorder) messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// waitN waits until at least n messages arrived and returns them.
func (r *recorder) waitN(t *testing.T, n int) []Message {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		if ms := r.messages(); len(ms) >= n {
			return ms
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("got %d messages, want %d: %v", len(r.messages()), n, r.messages())
		}
	}
}

func (r *recorder) pahoHandler(_ paho.Client, m paho.Message) {
	r.handle(context.Background(), Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retained: m.Retained()})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// appClient connects a paho client (MQTT 3.1.1) to url, as a device app would.
func appClient(t *testing.T, url, id string, configure func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetConnectTimeout(testTimeout).SetAutoReconnect(false)
	if configure != nil {
		configure(opts)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(testTimeout) || tok.Error() != nil {
		t.Fatalf("app client %s: connect to %s: %v", id, url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func mustToken(t *testing.T, what string, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(testTimeout) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
