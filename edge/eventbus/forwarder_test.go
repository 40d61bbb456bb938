package eventbus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type fakeUplink struct {
	mu   sync.Mutex
	got  []Message
	fail bool
}

func (u *fakeUplink) Upload(_ context.Context, topic string, payload []byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.fail {
		return errors.New("outbox closed")
	}
	u.got = append(u.got, Message{Topic: topic, Payload: payload})
	return nil
}

func (u *fakeUplink) uploads() []Message {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Message(nil), u.got...)
}

func TestForwarderUploadsOnlyUploadTopics(t *testing.T) {
	b := startBus(t, internalConfig())
	up := &fakeUplink{}
	fw := NewForwarder(b, up, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fw.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	app := appClient(t, "tcp://"+b.InternalAddr(), "uploader", nil)
	// The forwarder subscribes asynchronously; publish until the first upload arrives.
	waitFor(t, "the forwarder to subscribe", func() bool {
		mustToken(t, "publish", app.Publish("$hw/events/upload/probe", 1, false, "p"))
		return len(up.uploads()) > 0
	})
	mustToken(t, "publish other", app.Publish("$hw/events/device/default/d/twin/update", 1, false, "no"))
	mustToken(t, "publish records", app.Publish(UploadRecordsTopic, 1, false, "rec"))
	mustToken(t, "publish nested", app.Publish("$hw/events/upload/a/b", 1, false, "ab"))
	waitFor(t, "the uploads", func() bool {
		ms := up.uploads()
		return len(ms) > 0 && ms[len(ms)-1].Topic == "$hw/events/upload/a/b"
	})
	var topics []string
	for _, m := range up.uploads() {
		if m.Topic != "$hw/events/upload/probe" {
			topics = append(topics, m.Topic+"="+string(m.Payload))
		}
	}
	if len(topics) != 2 || topics[0] != UploadRecordsTopic+"=rec" || topics[1] != "$hw/events/upload/a/b=ab" {
		t.Errorf("uploaded %v, want the records and a/b uploads in order", topics)
	}
	if s := fw.Stats(); s.Forwarded != int64(len(up.uploads())) || s.Failed != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestForwarderCountsFailures(t *testing.T) {
	b := startBus(t, internalConfig())
	up := &fakeUplink{fail: true}
	fw := NewForwarder(b, up, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fw.Run(ctx) }()
	waitFor(t, "a failed upload", func() bool {
		if err := b.Publish(ctx, Message{Topic: "$hw/events/upload/x", Payload: []byte("1")}); err != nil {
			t.Fatal(err)
		}
		return fw.Stats().Failed > 0
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Run did not return")
	}
	if err := fw.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
}
