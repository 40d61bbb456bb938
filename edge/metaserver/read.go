package metaserver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/skerry-io/skerry/pkg/wire"
)

// readRequest is a parsed GET.
type readRequest struct {
	res           *resource
	namespace     string
	name          string
	sel           selectors
	form          outputForm
	includeObject string // None, Metadata (default), Object: what Table rows carry
	query         url.Values
}

// serveRead handles GET: one object, a list or a watch.
func (s *Server) serveRead(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	if !res.readable() {
		writeStatus(w, apierrors.NewMethodNotSupported(res.groupResource(), "get"))
		return
	}
	if ri.subresource != "" && (ri.subresource != "status" || len(res.subresources) == 0) {
		writeStatus(w, notFoundPath())
		return
	}
	q := r.URL.Query()
	rr := readRequest{res: res, namespace: ri.namespace, name: ri.name, form: negotiate(r.Header.Get("Accept")), query: q}
	rr.includeObject = q.Get("includeObject")
	switch rr.includeObject {
	case "":
		rr.includeObject = "Metadata"
	case "None", "Metadata", "Object":
	default:
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("includeObject: unsupported value %q", rr.includeObject)))
		return
	}
	watching := ri.watchPath || q.Get("watch") == "true" || q.Get("watch") == "1"
	if ri.name != "" && !watching {
		s.serveGet(w, r, rr)
		return
	}
	fieldSel := q.Get("fieldSelector")
	if ri.name != "" {
		// Legacy /watch/.../{name}: the name is a field selector.
		f := fields.OneTermEqualSelector("metadata.name", ri.name).String()
		if fieldSel != "" {
			f += "," + fieldSel
		}
		fieldSel = f
	}
	sel, err := parseSelectors(res, q.Get("labelSelector"), fieldSel)
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	rr.sel = sel
	if watching {
		s.serveWatch(w, r, rr)
		return
	}
	s.serveList(w, r, rr)
}

func (s *Server) serveGet(w http.ResponseWriter, r *http.Request, rr readRequest) {
	if rr.res.namespaced && rr.namespace == "" {
		writeStatus(w, notFoundPath())
		return
	}
	key := wire.Key{Namespace: rr.namespace, Type: rr.res.wireType, Name: rr.name}
	o, ok, err := s.cfg.Store.Get(r.Context(), key)
	if err != nil {
		s.log.Error("store get failed", "key", key.String(), "err", err)
		writeStatus(w, err)
		return
	}
	if !ok {
		writeStatus(w, apierrors.NewNotFound(rr.res.groupResource(), rr.name))
		return
	}
	it, err := decodeItem(rr.res, o)
	if err != nil {
		s.log.Error("stored object does not decode", "key", key.String(), "err", err)
		writeStatus(w, err)
		return
	}
	switch rr.form {
	case formTable:
		writeJSON(w, http.StatusOK, s.table(rr, []*item{it}, "", ""))
	case formPartial:
		writeJSON(w, http.StatusOK, partial(it))
	default:
		writeJSON(w, http.StatusOK, it.obj)
	}
}

// continueToken is the opaque continue value: the first page's revision, reported by every
// page so that a watch from it replays whatever changed while the client paged, and the last
// key served.
type continueToken struct {
	Revision  int64  `json:"rv"`
	Namespace string `json:"ns"`
	Name      string `json:"name"`
}

func decodeContinue(s string) (continueToken, error) {
	var t continueToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 1024 {
		return t, errors.New("continue key is not valid")
	}
	if err := json.Unmarshal(b, &t); err != nil || t.Revision < 0 {
		return t, errors.New("continue key is not valid")
	}
	return t, nil
}

func (t continueToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

// after reports whether it sorts after the token's last key.
func (t continueToken) after(it *item) bool {
	if it.namespace() != t.Namespace {
		return it.namespace() > t.Namespace
	}
	return it.name() > t.Name
}

// listItems returns the selected objects in key order and the store revision.
func (s *Server) listItems(r *http.Request, rr readRequest) ([]*item, int64, error) {
	objs, rev, err := s.cfg.Store.List(r.Context(), rr.res.wireType, rr.namespace)
	if err != nil {
		return nil, 0, fmt.Errorf("store list %s: %w", rr.res.wireType, err)
	}
	items := make([]*item, 0, len(objs))
	for _, o := range objs {
		if o.Key.Type != rr.res.wireType || (rr.namespace != "" && o.Key.Namespace != rr.namespace) {
			continue
		}
		it, err := decodeItem(rr.res, o)
		if err != nil {
			s.log.Warn("skipping stored object that does not decode", "key", o.Key.String(), "err", err)
			continue
		}
		if it.matches(rr.sel) {
			items = append(items, it)
		}
	}
	sortItems(items)
	return items, rev, nil
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request, rr readRequest) {
	var limit int64
	if v := rr.query.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("limit: invalid value %q", v)))
			return
		}
		limit = n
	}
	var tok *continueToken
	if v := rr.query.Get("continue"); v != "" {
		t, err := decodeContinue(v)
		if err != nil {
			writeStatus(w, apierrors.NewBadRequest(err.Error()))
			return
		}
		tok = &t
	}
	items, rev, err := s.listItems(r, rr)
	if err != nil {
		s.log.Error("list failed", "resource", rr.res.name, "err", err)
		writeStatus(w, err)
		return
	}
	if tok != nil {
		rev = tok.Revision
		i := 0
		for i < len(items) && !tok.after(items[i]) {
			i++
		}
		items = items[i:]
	}
	var cont string
	var remaining *int64
	if limit > 0 && int64(len(items)) > limit {
		n := int64(len(items)) - limit
		remaining = &n
		items = items[:limit]
		last := items[len(items)-1]
		cont = continueToken{Revision: rev, Namespace: last.namespace(), Name: last.name()}.encode()
	}
	rv := strconv.FormatInt(rev, 10)
	switch rr.form {
	case formTable:
		writeJSON(w, http.StatusOK, s.table(rr, items, rv, cont))
	case formPartial:
		objs := make([]map[string]any, 0, len(items))
		for _, it := range items {
			objs = append(objs, partial(it))
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"kind":       "PartialObjectMetadataList",
			"apiVersion": "meta.k8s.io/v1",
			"metadata":   metav1.ListMeta{ResourceVersion: rv, Continue: cont, RemainingItemCount: remaining},
			"items":      objs,
		})
	default:
		objs := make([]map[string]any, 0, len(items))
		for _, it := range items {
			objs = append(objs, it.obj)
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"kind":       rr.res.kind + "List",
			"apiVersion": rr.res.apiVersion(),
			"metadata":   metav1.ListMeta{ResourceVersion: rv, Continue: cont, RemainingItemCount: remaining},
			"items":      objs,
		})
	}
}

// partial is the PartialObjectMetadata form of it.
func partial(it *item) map[string]any {
	return map[string]any{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": it.meta()}
}
