package runner

import (
	"time"

	"k8s.io/utils/clock"
)

// backoff is the kubelet's flowcontrol.Backoff: per key, a delay that starts at initial
// and doubles up to max with every failure, forgotten after 2×max without one.
type backoff struct {
	clock          clock.PassiveClock
	initial, limit time.Duration
	entries        map[string]*backoffEntry
}

type backoffEntry struct {
	delay      time.Duration
	lastUpdate time.Time
	message    string // the failure that started the current delay
}

func newBackoff(c clock.PassiveClock, initial, limit time.Duration) *backoff {
	return &backoff{clock: c, initial: initial, limit: limit, entries: map[string]*backoffEntry{}}
}

// next records a failure at t and lengthens the delay.
func (b *backoff) next(key string, t time.Time, message string) {
	e := b.entries[key]
	if e == nil || t.Sub(e.lastUpdate) > 2*b.limit {
		e = &backoffEntry{delay: b.initial}
		b.entries[key] = e
	} else {
		e.delay = min(2*e.delay, b.limit)
	}
	e.lastUpdate = t
	e.message = message
}

// inBackoffSince reports whether the delay that follows t has not passed yet, and when it
// does.
func (b *backoff) inBackoffSince(key string, t time.Time) (bool, time.Time, *backoffEntry) {
	e := b.entries[key]
	if e == nil || t.Sub(e.lastUpdate) > 2*b.limit || b.clock.Now().Sub(t) >= e.delay {
		return false, time.Time{}, e
	}
	return true, t.Add(e.delay), e
}

func (b *backoff) reset(key string) { delete(b.entries, key) }

// seed restores the delay of a key that has taken steps back-off steps, the last at t, unless
// the key is known already. It is the state next would have left after steps+1 failures.
func (b *backoff) seed(key string, t time.Time, steps uint32) {
	if _, ok := b.entries[key]; ok || steps == 0 {
		return
	}
	d := b.initial
	for range steps - 1 {
		if d >= b.limit {
			break
		}
		d *= 2
	}
	b.entries[key] = &backoffEntry{delay: min(d, b.limit), lastUpdate: t}
}
