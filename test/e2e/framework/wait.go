package framework

import (
	"context"
	"testing"
	"time"
)

// Eventually calls cond every interval until it returns true, failing the test when timeout
// passes first. An error from cond is remembered and reported, not fatal: the condition may
// still come true (a resource not yet served, a socket not yet listening).
func Eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	const interval = 100 * time.Millisecond
	var lastErr error
	for {
		ok, err := cond(ctx)
		if ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s (last error: %v)", timeout, what, lastErr)
		case <-time.After(interval):
		}
	}
}
