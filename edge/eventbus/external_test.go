package eventbus

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func externalConfig(url string) Config {
	cfg := Default()
	cfg.Mode = ModeExternal
	cfg.External.URL = url
	cfg.External.ClientID = "edgecore-test"
	cfg.External.ConnectTimeout = metav1.Duration{Duration: 3 * time.Second}
	cfg.QoS = 1
	return cfg
}

func waitConnects(t *testing.T, b *EventBus, n int64) {
	t.Helper()
	waitFor(t, "connection to the external broker", func() bool {
		s := b.Stats()
		return s.Connects >= n && s.ExternalConnected
	})
}

func TestExternalExchangesMessages(t *testing.T) {
	m := startMosquitto(t, "allow_anonymous true")
	b := startBus(t, externalConfig(m.url()))
	waitConnects(t, b, 1)

	got := newRecorder()
	unsub, err := b.Subscribe("$hw/events/device/+/+/state/update", got.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	app := appClient(t, m.url(), "mapper", nil)
	results := newRecorder()
	mustToken(t, "app subscribe", app.Subscribe("$hw/events/device/+/+/state/update/result", 1, results.pahoHandler))

	mustToken(t, "app publish", app.Publish("$hw/events/device/default/d1/state/update", 1, false, `{"state":"online"}`))
	if ms := got.waitN(t, 1); ms[0].Topic != "$hw/events/device/default/d1/state/update" || string(ms[0].Payload) != `{"state":"online"}` {
		t.Errorf("handler got %q %q", ms[0].Topic, ms[0].Payload)
	}
	if err := b.Publish(context.Background(), Message{Topic: "$hw/events/device/default/d1/state/update/result", Payload: []byte("ok"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if rs := results.waitN(t, 1); string(rs[0].Payload) != "ok" {
		t.Errorf("app got %q", rs[0].Payload)
	}
}

// TestExternalBrokerStartsLater: the first connection is retried, and subscriptions made
// before it are made at the broker when it comes.
func TestExternalBrokerStartsLater(t *testing.T) {
	m := startMosquitto(t, "allow_anonymous true")
	m.stop()
	b := startBus(t, externalConfig(m.url()))
	got := newRecorder()
	if _, err := b.Subscribe("late/#", got.handle); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), Message{Topic: "late/x"}); !errors.Is(err, ErrDisconnected) {
		t.Errorf("Publish with the broker down: %v, want ErrDisconnected", err)
	}
	waitFor(t, "a failed connection attempt", func() bool { return b.Stats().ConnectAttempts >= 1 })
	m.start()
	waitConnects(t, b, 1)
	app := appClient(t, m.url(), "app", nil)
	mustToken(t, "publish", app.Publish("late/x", 1, false, "hi"))
	got.waitN(t, 1)
}

func TestExternalReconnectSubscribesAgain(t *testing.T) {
	m := startMosquitto(t, "allow_anonymous true")
	b := startBus(t, externalConfig(m.url()))
	waitConnects(t, b, 1)
	got := newRecorder()
	if _, err := b.Subscribe("r/#", got.handle); err != nil {
		t.Fatal(err)
	}

	m.stop()
	waitFor(t, "the bus to notice the broker is gone", func() bool { return !b.Stats().ExternalConnected })
	err := b.Publish(context.Background(), Message{Topic: "r/out", Payload: []byte("lost"), QoS: 1})
	if !errors.Is(err, ErrDisconnected) {
		t.Errorf("Publish during the outage: %v, want ErrDisconnected", err)
	}

	m.start() // a new broker process: it knows nothing of the old session
	waitConnects(t, b, 2)
	if s := b.Stats(); s.Reconnects != 1 {
		t.Errorf("Reconnects = %d, want 1", s.Reconnects)
	}
	app := appClient(t, m.url(), "app", nil)
	out := newRecorder()
	mustToken(t, "app subscribe", app.Subscribe("r/out", 1, out.pahoHandler))
	mustToken(t, "app publish", app.Publish("r/in", 1, false, "after"))
	if ms := got.waitN(t, 1); ms[0].Topic != "r/in" {
		t.Errorf("handler got %q, want r/in", ms[0].Topic)
	}
	if err := b.Publish(context.Background(), Message{Topic: "r/out", Payload: []byte("back"), QoS: 1}); err != nil {
		t.Fatalf("Publish after reconnect: %v", err)
	}
	if ms := out.waitN(t, 1); string(ms[0].Payload) != "back" {
		t.Errorf("app got %q, want back", ms[0].Payload)
	}
}

func TestExternalPasswordFile(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_passwd"); err != nil {
		t.Skip("mosquitto_passwd not installed")
	}
	dir := t.TempDir()
	pwdb := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pwdb, "edge", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	m := startMosquitto(t, "allow_anonymous false\npassword_file "+pwdb)

	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := externalConfig(m.url())
	cfg.External.Username = "edge"
	cfg.External.PasswordFile = good
	b := startBus(t, cfg)
	waitConnects(t, b, 1)

	cfg.External.ClientID = "edgecore-bad"
	cfg.External.PasswordFile = bad
	refused := startBus(t, cfg)
	waitFor(t, "two refused attempts", func() bool { return refused.Stats().ConnectAttempts >= 2 })
	if s := refused.Stats(); s.Connects != 0 || s.ExternalConnected {
		t.Errorf("wrong password connected: %+v", s)
	}
}

// TestBothModeDeliversOnce checks the rule of mode both: app messages are not bridged and
// reach each handler once; edgecore's own publishes reach apps on both brokers and its
// own handlers once.
func TestBothModeDeliversOnce(t *testing.T) {
	m := startMosquitto(t, "allow_anonymous true")
	cfg := externalConfig(m.url())
	cfg.Mode = ModeBoth
	cfg.Internal.Address = "127.0.0.1:0"
	b := startBus(t, cfg)
	waitConnects(t, b, 1)

	got := newRecorder()
	if _, err := b.Subscribe("b/#", got.handle); err != nil {
		t.Fatal(err)
	}
	inApp := appClient(t, "tcp://"+b.InternalAddr(), "in-app", nil)
	exApp := appClient(t, m.url(), "ex-app", nil)
	inGot, exGot := newRecorder(), newRecorder()
	mustToken(t, "internal app subscribe", inApp.Subscribe("b/#", 1, inGot.pahoHandler))
	mustToken(t, "external app subscribe", exApp.Subscribe("b/#", 1, exGot.pahoHandler))

	mustToken(t, "internal app publish", inApp.Publish("b/in", 1, false, "i"))
	mustToken(t, "external app publish", exApp.Publish("b/ex", 1, false, "e"))
	got.waitN(t, 2)
	ctx := context.Background()
	for _, topic := range []string{"b/own", "b/end"} {
		if err := b.Publish(ctx, Message{Topic: topic, Payload: []byte("o"), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both echoes", func() bool { return b.Stats().EchoesSkipped == 2 })
	if topics := sortedTopics(got.waitN(t, 4)); !slices.Equal(topics, []string{"b/end", "b/ex", "b/in", "b/own"}) {
		t.Errorf("handler got %v, want each of b/end b/ex b/in b/own once", topics)
	}
	// Each app sees its own message back and edgecore's two, never the other broker's app.
	if topics := sortedTopics(inGot.waitN(t, 3)); !slices.Equal(topics, []string{"b/end", "b/in", "b/own"}) {
		t.Errorf("internal app got %v", topics)
	}
	if topics := sortedTopics(exGot.waitN(t, 3)); !slices.Equal(topics, []string{"b/end", "b/ex", "b/own"}) {
		t.Errorf("external app got %v", topics)
	}

	// With the external broker down, a publish still reaches the internal one.
	m.stop()
	waitFor(t, "the bus to notice the broker is gone", func() bool { return !b.Stats().ExternalConnected })
	if err := b.Publish(ctx, Message{Topic: "b/down", Payload: []byte("d")}); err != nil {
		t.Errorf("Publish in mode both with the external broker down: %v", err)
	}
	inGot.waitN(t, 4)
}

func sortedTopics(ms []Message) []string {
	var ts []string
	for _, m := range ms {
		ts = append(ts, m.Topic)
	}
	slices.Sort(ts)
	return ts
}
