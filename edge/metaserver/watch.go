package metaserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/pkg/wire"
)

// watchWriteTimeout bounds one event write, so a client that stopped reading cannot hold a
// watch (and its store subscription) forever.
const watchWriteTimeout = 30 * time.Second

// watchEvent is one line of a watch stream.
type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watcher is the state of one watch request.
type watcher struct {
	s   *Server
	rr  readRequest
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *json.Encoder
	// known holds the keys the client has been sent as selected, when a selector is set: an
	// object leaving the selection is then sent as DELETED, as the apiserver does.
	known map[wire.Key]struct{}
	// unknownUpTo: for events up to this revision the client's view is unknown (a watch from
	// a resourceVersion with a selector), so a non-matching change is sent as DELETED anyway;
	// clients ignore deletions of objects they do not have.
	unknownUpTo int64
	lastRev     int64
}

// serveWatch streams events as the apiserver does. resourceVersion "" or "0" (and
// sendInitialEvents=true) first sends the current objects as ADDED; N sends the changes after
// N; a compacted N ends the stream with a 410 Expired ERROR event so that clients relist.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, rr readRequest) {
	q := rr.query
	timeout := s.cfg.WatchTimeout
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("timeoutSeconds: invalid value %q", v)))
			return
		}
		if n > 0 && n < int64(time.Duration(1<<62)/time.Second) {
			timeout = time.Duration(n) * time.Second
		}
	}
	bookmarks := q.Get("allowWatchBookmarks") == "true"
	rv := q.Get("resourceVersion")
	var initial bool
	switch q.Get("sendInitialEvents") {
	case "true":
		initial = true
	case "false":
	case "":
		initial = rv == "" || rv == "0"
	default:
		writeStatus(w, apierrors.NewBadRequest("sendInitialEvents: want true or false"))
		return
	}
	initialEnd := initial && q.Get("sendInitialEvents") == "true" && bookmarks

	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	wt := &watcher{s: s, rr: rr, w: w, rc: http.NewResponseController(w)}
	tracked := !rr.sel.empty()
	if tracked {
		wt.known = map[wire.Key]struct{}{}
	}

	var from int64
	var initialItems []*item
	numeric := !(rv == "" || rv == "0")
	if numeric {
		n, err := strconv.ParseInt(rv, 10, 64)
		if err != nil || n < 0 {
			writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version %q", rv)))
			return
		}
		from = n
	}
	if initial || !numeric || tracked {
		items, listRev, err := s.listItems(r, rr)
		if err != nil {
			s.log.Error("watch: list failed", "resource", rr.res.name, "err", err)
			writeStatus(w, err)
			return
		}
		if tracked {
			for _, it := range items {
				wt.known[it.key] = struct{}{}
			}
		}
		if initial || !numeric {
			from = listRev
			if initial {
				initialItems = items
			}
		} else if tracked {
			wt.unknownUpTo = listRev
		}
	}
	wt.lastRev = from

	sw, werr := s.cfg.Store.Watch(ctx, from)
	if werr == nil {
		defer sw.Stop()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	wt.enc = json.NewEncoder(w)
	if werr != nil {
		wt.sendError(from, werr)
		return
	}
	if err := wt.flush(); err != nil {
		return
	}
	for _, it := range initialItems {
		if err := wt.send(string(Added), it); err != nil {
			return
		}
	}
	if initialEnd {
		if err := wt.sendBookmark(true); err != nil {
			return
		}
	}

	var tick <-chan time.Time
	if bookmarks {
		t := time.NewTicker(s.cfg.BookmarkInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return // client gone or timeoutSeconds: a clean end of stream
		case <-s.stopping:
			return
		case <-tick:
			if err := wt.sendBookmark(false); err != nil {
				return
			}
		case ev, ok := <-sw.Events():
			if !ok {
				if err := sw.Err(); err != nil && ctx.Err() == nil {
					wt.sendError(wt.lastRev, err)
				}
				return
			}
			if err := wt.handle(ev); err != nil {
				return
			}
		}
	}
}

// handle filters one store event and sends what the client should see.
func (wt *watcher) handle(ev Event) error {
	o := ev.Object
	if o.Revision > wt.lastRev {
		wt.lastRev = o.Revision
	}
	res := wt.rr.res
	if o.Key.Type != res.wireType || (wt.rr.namespace != "" && o.Key.Namespace != wt.rr.namespace) {
		return nil
	}
	it, err := decodeItem(res, o)
	if err != nil {
		if ev.Type != Deleted {
			wt.s.log.Warn("watch: skipping stored object that does not decode", "key", o.Key.String(), "err", err)
			return nil
		}
		// A deletion must reach the client even if its content is unusable.
		o.Content = json.RawMessage(`{}`)
		if it, err = decodeItem(res, o); err != nil {
			return nil
		}
	}
	if wt.known == nil {
		return wt.send(string(ev.Type), it)
	}
	_, was := wt.known[o.Key]
	unknown := o.Revision <= wt.unknownUpTo
	if ev.Type != Deleted && it.matches(wt.rr.sel) {
		wt.known[o.Key] = struct{}{}
		typ := string(Added)
		if was {
			typ = string(ev.Type)
		}
		return wt.send(typ, it)
	}
	// In the unknown window a non-matching creation cannot be in the client's view; any other
	// change might be.
	if was || (unknown && ev.Type != Added) {
		delete(wt.known, o.Key)
		return wt.send(string(Deleted), it)
	}
	return nil
}

// render encodes it in the requested form.
func (wt *watcher) render(it *item) (json.RawMessage, error) {
	switch wt.rr.form {
	case formTable:
		return json.Marshal(wt.s.table(wt.rr, []*item{it}, "", ""))
	case formPartial:
		return json.Marshal(partial(it))
	}
	return json.Marshal(it.obj)
}

func (wt *watcher) send(typ string, it *item) error {
	b, err := wt.render(it)
	if err != nil {
		return fmt.Errorf("encode %s: %w", it.key, err)
	}
	return wt.write(watchEvent{Type: typ, Object: b})
}

// sendBookmark sends a BOOKMARK at the last revision seen; initialEnd marks the end of the
// initial events (the watch-list protocol client-go informers use).
func (wt *watcher) sendBookmark(initialEnd bool) error {
	md := map[string]any{"resourceVersion": strconv.FormatInt(wt.lastRev, 10)}
	if initialEnd {
		md["annotations"] = map[string]string{metav1.InitialEventsAnnotationKey: "true"}
	}
	var obj any
	switch wt.rr.form {
	case formTable:
		obj = map[string]any{"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": md, "columnDefinitions": nil, "rows": nil}
	case formPartial:
		obj = map[string]any{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": md}
	default:
		obj = map[string]any{"kind": wt.rr.res.kind, "apiVersion": wt.rr.res.apiVersion(), "metadata": md}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encode bookmark: %w", err)
	}
	return wt.write(watchEvent{Type: "BOOKMARK", Object: b})
}

// sendError ends the stream with an ERROR event: 410 Expired for a compacted revision.
func (wt *watcher) sendError(from int64, err error) {
	var se error
	if errors.Is(err, ErrCompacted) {
		se = apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d", from))
	} else {
		wt.s.log.Error("watch failed", "resource", wt.rr.res.name, "err", err)
		se = err
	}
	b, _ := json.Marshal(statusOf(se))
	_ = wt.write(watchEvent{Type: "ERROR", Object: b})
}

func (wt *watcher) write(ev watchEvent) error {
	_ = wt.rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
	if err := wt.enc.Encode(ev); err != nil {
		return fmt.Errorf("write watch event: %w", err)
	}
	return wt.flush()
}

func (wt *watcher) flush() error {
	if err := wt.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("flush watch: %w", err)
	}
	return nil
}
