package eventbus

import (
	"testing"
	"time"
)

func TestEchoFilter(t *testing.T) {
	now := time.Unix(1000, 0)
	f := newEchoFilter()
	f.now = func() time.Time { return now }

	f.expect("a", []byte("x"))
	f.expect("a", []byte("x"))
	if f.consume("a", []byte("y")) || f.consume("b", []byte("x")) {
		t.Fatal("consumed a different message")
	}
	for i := range 2 {
		if !f.consume("a", []byte("x")) {
			t.Fatalf("expected echo %d not consumed", i+1)
		}
	}
	if f.consume("a", []byte("x")) {
		t.Fatal("consumed a third time: an app's identical message would be lost")
	}

	f.expect("late", nil)
	now = now.Add(echoWindow + time.Second)
	if f.consume("late", nil) {
		t.Error("consumed an echo past its window")
	}

	f.expect("gone", nil)
	f.forget("gone", nil)
	if f.consume("gone", nil) {
		t.Error("consumed a forgotten echo")
	}

	for i := range maxEchoes + 10 {
		f.expect(string(rune('a'+i%26))+time.Duration(i).String(), nil)
	}
	if len(f.pending) > maxEchoes {
		t.Errorf("%d pending echoes, want at most %d", len(f.pending), maxEchoes)
	}
}
