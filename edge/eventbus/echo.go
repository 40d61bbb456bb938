package eventbus

import (
	"crypto/sha256"
	"sync"
	"time"
)

const (
	// echoWindow is how long a publish of ours is expected back from the external broker.
	echoWindow = 30 * time.Second
	// maxEchoes bounds the memory of expected echoes; past it, an echo may be delivered.
	maxEchoes = 4096
)

type echoKey [sha256.Size]byte

type echoEntry struct {
	n     int
	until time.Time
}

// echoFilter remembers edgecore's own publishes in mode both, so that the copy the external
// broker sends back to edgecore's subscription is not delivered a second time (the internal
// broker delivered it already). MQTT 3.1.1 has no "no local" subscription option.
type echoFilter struct {
	mu      sync.Mutex
	pending map[echoKey]echoEntry
	now     func() time.Time
}

func newEchoFilter() *echoFilter {
	return &echoFilter{pending: map[echoKey]echoEntry{}, now: time.Now}
}

func keyOf(topic string, payload []byte) echoKey {
	h := sha256.New()
	h.Write([]byte(topic))
	h.Write([]byte{0}) // topics contain no NUL: topic and payload cannot run into each other
	h.Write(payload)
	var k echoKey
	h.Sum(k[:0])
	return k
}

func (f *echoFilter) expect(topic string, payload []byte) {
	k := keyOf(topic, payload)
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pending) >= maxEchoes {
		for k, e := range f.pending {
			if now.After(e.until) {
				delete(f.pending, k)
			}
		}
		if len(f.pending) >= maxEchoes {
			return
		}
	}
	e := f.pending[k]
	e.n++
	e.until = now.Add(echoWindow)
	f.pending[k] = e
}

// forget undoes expect for a publish that failed.
func (f *echoFilter) forget(topic string, payload []byte) {
	f.take(keyOf(topic, payload), time.Time{})
}

// consume reports whether a message is an expected echo, and if so forgets it.
func (f *echoFilter) consume(topic string, payload []byte) bool {
	return f.take(keyOf(topic, payload), f.now())
}

func (f *echoFilter) take(k echoKey, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.pending[k]
	if !ok {
		return false
	}
	if e.n <= 1 {
		delete(f.pending, k)
	} else {
		e.n--
		f.pending[k] = e
	}
	return !now.After(e.until)
}
