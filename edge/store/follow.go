package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Follow hands every store change after revision rev to handle, until ctx ends (it then
// returns nil). When the watch falls behind (the change log was compacted, or the watcher
// was too slow), it calls relist, which must bring the caller's view up to date and return
// the revision that view is at, and watches on from there. Errors from relist, and watch
// errors listing again cannot cure, are returned.
func (db *DB) Follow(ctx context.Context, rev int64, relist func(context.Context) (int64, error), handle func(Event), log *slog.Logger) error {
	for {
		w, err := db.Watch(ctx, rev)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !errors.Is(err, ErrCompacted):
			return fmt.Errorf("store: watch: %w", err)
		case err == nil:
			err = drain(ctx, w, handle)
			w.Stop()
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return err
			}
			log.Info("store watch ended; listing again", "err", w.Err())
		}
		if rev, err = relist(ctx); err != nil {
			return err
		}
	}
}

// drain hands w's events to handle until w ends; only an end listing again cannot cure is
// an error.
func drain(ctx context.Context, w *Watcher, handle func(Event)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events():
			if !ok {
				err := w.Err()
				if err == nil || errors.Is(err, ErrCompacted) || errors.Is(err, ErrWatcherTooSlow) {
					return nil
				}
				return fmt.Errorf("store: watch: %w", err)
			}
			handle(ev)
		}
	}
}
