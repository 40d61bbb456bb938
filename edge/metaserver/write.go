package metaserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/pkg/wire"
)

// SourceModule is route.source of the messages the metaserver sends.
const SourceModule = "metaserver"

// offlineMessage is what a write gets while the node cannot reach the cloud.
const offlineMessage = "the edge node is disconnected from the cloud: writes are unavailable until it reconnects (reads are still served from the node's local store)"

// writeOp is a write the node may make, as a wire message.
type writeOp struct {
	op    wire.Operation
	key   wire.Key
	patch bool // the body is a strategic merge patch, not an object
}

// planWrite maps an HTTP write to a wire operation, or returns the Status refusing it.
func planWrite(method string, res *resource, ri requestInfo) (writeOp, error) {
	gr := res.groupResource()
	refuse := func() (writeOp, error) {
		verb := strings.ToLower(method)
		what := res.name
		if ri.subresource != "" {
			what += "/" + ri.subresource
		}
		return writeOp{}, newStatusError(http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed,
			fmt.Sprintf("the edge metaserver does not allow %s on %s: only pod and node status, events and the node's lease are forwarded to the cloud; everything else is read-only at the edge", verb, what))
	}
	switch {
	case gr.Group == "" && res.name == "pods" && ri.subresource == "status" && ri.name != "":
		switch method {
		case http.MethodPut:
			return writeOp{op: wire.OpUpdate, key: wire.Key{Namespace: ri.namespace, Type: wire.TypePodStatus, Name: ri.name}}, nil
		case http.MethodPatch:
			return writeOp{op: wire.OpPatch, key: wire.Key{Namespace: ri.namespace, Type: wire.TypePodPatch, Name: ri.name}, patch: true}, nil
		}
	case gr.Group == "" && res.name == "nodes" && ri.subresource == "status" && ri.name != "":
		switch method {
		case http.MethodPut:
			return writeOp{op: wire.OpUpdate, key: wire.Key{Type: wire.TypeNodeStatus, Name: ri.name}}, nil
		case http.MethodPatch:
			return writeOp{op: wire.OpPatch, key: wire.Key{Type: wire.TypeNodePatch, Name: ri.name}, patch: true}, nil
		}
	case gr.Group == "" && res.name == "events" && ri.subresource == "" && ri.namespace != "":
		if (method == http.MethodPost && ri.name == "") || (method == http.MethodPut && ri.name != "") {
			return writeOp{op: wire.OpInsert, key: wire.Key{Namespace: ri.namespace, Type: wire.TypeEvent, Name: ri.name}}, nil
		}
	case res.name == "leases" && ri.subresource == "" && ri.namespace == "kube-node-lease":
		if (method == http.MethodPost && ri.name == "") || (method == http.MethodPut && ri.name != "") {
			return writeOp{op: wire.OpUpdate, key: wire.Key{Namespace: ri.namespace, Type: wire.TypeLease, Name: ri.name}}, nil
		}
	}
	return refuse()
}

// serveWrite forwards the writes a node may make to the cloud and refuses the others.
func (s *Server) serveWrite(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	if res.namespaced && ri.namespace == "" && ri.name != "" {
		writeStatus(w, notFoundPath())
		return
	}
	plan, err := planWrite(r.Method, res, ri)
	if err != nil {
		writeStatus(w, err)
		return
	}
	if err := checkContentType(r.Header.Get("Content-Type"), plan.patch); err != nil {
		writeStatus(w, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeStatus(w, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d bytes", mbe.Limit)))
			return
		}
		writeStatus(w, apierrors.NewBadRequest("reading the request body failed"))
		return
	}
	content, key, err := prepareBody(body, plan, res)
	if err != nil {
		writeStatus(w, err)
		return
	}
	plan.key = key
	if err := key.Validate(); err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	s.forward(w, r, plan, content)
}

// checkContentType accepts JSON objects, and strategic merge patches for patches (the cloud
// applies every patch as one; a JSON merge or JSON patch would be misapplied).
func checkContentType(ct string, patch bool) error {
	mt := "application/json"
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("invalid Content-Type %q", ct))
		}
	}
	want := "application/json"
	if patch {
		want = "application/strategic-merge-patch+json"
	}
	if mt != want {
		return newStatusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
			fmt.Sprintf("the body of this request must be %s, not %s", want, mt))
	}
	return nil
}

// prepareBody checks the body and returns the content to send and the final key (an event or
// lease created by POST is named by its body).
func prepareBody(body []byte, plan writeOp, res *resource) (json.RawMessage, wire.Key, error) {
	key := plan.key
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, key, apierrors.NewBadRequest("the request body must be a JSON object")
	}
	if dec.More() {
		return nil, key, apierrors.NewBadRequest("the request body must be one JSON object")
	}
	if plan.patch {
		return json.RawMessage(body), key, nil
	}
	md, ok := obj["metadata"].(map[string]any)
	if !ok {
		md = map[string]any{}
		obj["metadata"] = md
	}
	name, _ := md["name"].(string)
	switch {
	case key.Name == "" && name == "":
		gen, _ := md["generateName"].(string)
		if gen == "" {
			return nil, key, apierrors.NewBadRequest("name or generateName is required")
		}
		name = gen + randomSuffix()
		md["name"] = name
		key.Name = name
	case key.Name == "":
		key.Name = name
	case name == "":
		md["name"] = key.Name
	case name != key.Name:
		return nil, key, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", name, key.Name))
	}
	if res.namespaced {
		ns, _ := md["namespace"].(string)
		switch {
		case ns == "":
			md["namespace"] = key.Namespace
		case ns != key.Namespace:
			return nil, key, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, key, apierrors.NewBadRequest("the request body does not re-encode")
	}
	return b, key, nil
}

// randomSuffix is the apiserver's generateName suffix: 5 characters without vowels.
func randomSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	var b [5]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// forward sends the write and answers with the cloud's reply.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, plan writeOp, content json.RawMessage) {
	if s.cfg.Forwarder == nil {
		writeStatus(w, apierrors.NewServiceUnavailable(offlineMessage))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WriteTimeout)
	defer cancel()
	m := wire.NewMessage(wire.Route{Source: SourceModule, Group: wire.GroupResource, Operation: plan.op, Resource: plan.key.String()}, content)
	m.Header.Sync = true
	log := s.log.With("operation", string(plan.op), "resource", plan.key.String(), "msg_id", m.Header.ID)
	reply, err := s.cfg.Forwarder.Request(ctx, m)
	switch {
	case errors.Is(err, ErrOffline):
		log.Info("write refused: offline")
		writeStatus(w, apierrors.NewServiceUnavailable(offlineMessage))
		return
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		log.Warn("write timed out", "err", err)
		writeStatus(w, apierrors.NewTimeoutError("the cloud did not answer the write in time", 5))
		return
	case err != nil:
		log.Warn("write forwarding failed", "err", err)
		writeStatus(w, apierrors.NewServiceUnavailable("forwarding the write to the cloud failed; retry later"))
		return
	case reply == nil:
		writeStatus(w, apierrors.NewServiceUnavailable("the cloud sent no answer; retry later"))
		return
	}
	switch reply.Route.Operation {
	case wire.OpError:
		reason := string(reply.Content)
		var sreason string
		if json.Unmarshal(reply.Content, &sreason) == nil {
			reason = sreason
		}
		log.Info("write refused by the cloud", "reason", reason)
		writeStatus(w, cloudError(plan, reason))
		return
	case wire.OpResponse:
	default:
		log.Warn("unexpected answer from the cloud", "answer_operation", string(reply.Route.Operation))
		writeStatus(w, apierrors.NewInternalError(fmt.Errorf("unexpected answer %q from the cloud", reply.Route.Operation)))
		return
	}
	code := http.StatusOK
	if r.Method == http.MethodPost {
		code = http.StatusCreated
	}
	out := []byte(reply.Content)
	if bytes.Equal(bytes.TrimSpace(out), []byte(wire.AckContent)) {
		if plan.patch {
			// We sent a patch, not an object: answer with what we know.
			writeJSON(w, code, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusSuccess, Code: int32(code), Message: "patch accepted by the cloud"})
			return
		}
		out = content
	}
	if !json.Valid(out) || len(out) == 0 || out[0] != '{' {
		writeStatus(w, apierrors.NewInternalError(errors.New("the cloud answered with something that is not an object")))
		return
	}
	out = withoutCloudResourceVersion(out)
	log.Debug("write forwarded")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(out)
}

// cloudError maps the cloud's refusal text to a Status: the cloud's authorizer refuses with
// 403-like reasons; malformed input is a 400; a missing object 404; a changed uid 409.
func cloudError(plan writeOp, reason string) error {
	msg := fmt.Sprintf("the cloud refused %s %s: %s", plan.op, plan.key, reason)
	l := strings.ToLower(reason)
	switch {
	case strings.Contains(l, "transient"):
		return newStatusError(http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, msg)
	case strings.Contains(l, "not found"):
		return newStatusError(http.StatusNotFound, metav1.StatusReasonNotFound, msg)
	case strings.Contains(l, "conflict") || strings.Contains(l, "precondition"):
		return newStatusError(http.StatusConflict, metav1.StatusReasonConflict, msg)
	case strings.Contains(l, "invalid") || strings.Contains(l, "malformed") || strings.Contains(l, "decode") || strings.Contains(l, "bad request"):
		return newStatusError(http.StatusBadRequest, metav1.StatusReasonBadRequest, msg)
	}
	return newStatusError(http.StatusForbidden, metav1.StatusReasonForbidden, msg)
}

// withoutCloudResourceVersion moves an answered object's resourceVersion (the cloud's) into
// [CloudResourceVersionAnnotation]: this API's resource versions are the edge store's, and a
// client that watched or wrote with the cloud's value would get wrong answers.
func withoutCloudResourceVersion(obj []byte) []byte {
	var m map[string]any
	if err := json.Unmarshal(obj, &m); err != nil {
		return obj
	}
	meta, ok := m["metadata"].(map[string]any)
	if !ok {
		return obj
	}
	rv, ok := meta["resourceVersion"].(string)
	if !ok || rv == "" {
		return obj
	}
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
	}
	ann[CloudResourceVersionAnnotation] = rv
	meta["annotations"] = ann
	delete(meta, "resourceVersion")
	out, err := json.Marshal(m)
	if err != nil {
		return obj
	}
	return out
}
