package hub

import (
	"math/rand/v2"
	"time"
)

// Backoff defaults.
const (
	DefaultBackoffBase = time.Second
	DefaultBackoffMax  = 60 * time.Second
	// DefaultResetAfter equals the cloud's 30 s silence rule (spec §2): a session that
	// outlived one silence window carried keepalives both ways and was really up.
	DefaultResetAfter = 30 * time.Second
)

// Backoff is the reconnect policy: exponential backoff with full jitter. The n-th
// consecutive failure (n = 0, 1, ...) waits a uniformly random time in
// [0, min(Max, Base·2^n)].
//
// Full jitter, including before the first retry after a disconnect (n = 0), is what keeps a
// restarted cloudcore from being hit by all its nodes at the same instant: they all lost
// their connection at once, and only the random draw spreads them out. The very first dial
// when the hub starts is not delayed: edgecore restarts are not synchronised across nodes.
type Backoff struct {
	Base time.Duration // ≤ 0: DefaultBackoffBase
	Max  time.Duration // ≤ 0: DefaultBackoffMax
	// ResetAfter: a session that stayed up at least this long resets the failure count to
	// zero. Shorter sessions count as failures, so a cloud that accepts and then drops the
	// connection at once (crash loop, overload, a load balancer flapping) sees the delays
	// grow instead of being hammered at the base rate. ≤ 0: DefaultResetAfter.
	ResetAfter time.Duration
	// Rand returns a uniform random int64 in [0, n) for n > 0; nil means math/rand/v2.
	// Tests inject a deterministic source.
	Rand func(n int64) int64
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = DefaultBackoffBase
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Max < b.Base {
		b.Max = b.Base
	}
	if b.ResetAfter <= 0 {
		b.ResetAfter = DefaultResetAfter
	}
	if b.Rand == nil {
		b.Rand = rand.Int64N
	}
	return b
}

// Ceiling is the upper bound of the n-th delay: min(Max, Base·2^n), computed without
// overflow for any n.
func (b Backoff) Ceiling(n int) time.Duration {
	b = b.withDefaults()
	c := b.Base
	for i := 0; i < n && c < b.Max; i++ {
		c *= 2
	}
	return min(c, b.Max)
}

// Delay returns the wait before the retry after the n-th consecutive failure.
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	c := b.Ceiling(n)
	// +1 makes the ceiling itself reachable: the interval is closed.
	return time.Duration(b.Rand(int64(c) + 1))
}
