package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/skerry-io/skerry/cloud/hub"
)

// call runs one API call with its own timeout, retrying transient failures in place for a
// short while: most API server hiccups pass within seconds, and answering quickly beats the
// edge's outbox resend. When the budget is spent (or ctx is done) the error wraps
// hub.ErrTransient so the edge sends the message again. Permanent errors come back as they are,
// for the caller to interpret (NotFound, Conflict, AlreadyExists mean different things to each).
func (h *Handler) call(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	start := h.clock.Now()
	backoff := h.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, h.cfg.CallTimeout)
		err := fn(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %s: %w", hub.ErrTransient, what, ctx.Err())
		}
		if !isTransient(err) {
			return err
		}
		if attempt >= h.cfg.RetryAttempts || h.clock.Now().Add(backoff).Sub(start) > h.cfg.RetryBudget {
			return fmt.Errorf("%w: %s (after %d attempts): %w", hub.ErrTransient, what, attempt, err)
		}
		h.log.Debug("API call failed, retrying", "call", what, "attempt", attempt, "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s: %w", hub.ErrTransient, what, ctx.Err())
		case <-h.clock.After(backoff):
		}
		backoff *= 2
	}
}

// isTransient reports whether err says nothing about the request itself: the API server was
// overloaded, unreachable or slow. The caller has already ruled out its own ctx being done, so
// a deadline here is the per-call timeout.
func isTransient(err error) bool {
	switch {
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err):
		return true
	case errors.Is(err, context.DeadlineExceeded):
		return true
	case utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err):
		return true
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Code >= 500
	}
	// url.Error and net.OpError: the request did not get a verdict from the API server.
	var ne net.Error
	return errors.As(err, &ne)
}
