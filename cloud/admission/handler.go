package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
)

// MaxReviewBytes caps a request body: a pod is at most ~1.5 MiB in etcd and a CREATE review
// carries it once.
const MaxReviewBytes = 3 << 20

// ErrMalformed is wrapped by every error about a request the handler cannot read.
var ErrMalformed = errors.New("malformed AdmissionReview")

// Handler serves admission.k8s.io/v1 AdmissionReviews for pods. It always allows: it only adds
// tolerations to pods being created. A request it cannot read gets 400, which the apiserver
// treats as a failed call (ignored under failurePolicy Ignore, and counted in its fail-open
// metric) rather than as a rejection.
type Handler struct {
	policy *Policy
	log    *slog.Logger
}

// NewHandler returns a handler applying policy, which must not be nil. log may be nil.
func NewHandler(policy *Policy, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{policy: policy, log: log}
}

// ServeHTTP answers one AdmissionReview.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "admission webhook: POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			http.Error(w, "admission webhook: Content-Type must be application/json", http.StatusUnsupportedMediaType)
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReviewBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("admission webhook: request body over %d bytes", MaxReviewBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "admission webhook: reading request: "+err.Error(), http.StatusBadRequest)
		return
	}
	review, err := DecodeReview(body)
	if err != nil {
		h.log.Warn("autonomy webhook: bad request", "err", err)
		http.Error(w, "admission webhook: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := h.Review(review.Request)
	if err != nil {
		h.log.Warn("autonomy webhook: bad request", "uid", review.Request.UID, "err", err)
		http.Error(w, "admission webhook: "+err.Error(), http.StatusBadRequest)
		return
	}
	out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
	if err != nil {
		http.Error(w, "admission webhook: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// DecodeReview parses an admission.k8s.io/v1 AdmissionReview carrying a request. It matches keys
// case-sensitively and rejects duplicate keys (so the webhook cannot read a different value
// than the apiserver meant), invalid UTF-8, trailing data and a missing request or uid. Unknown
// fields are accepted: a newer apiserver may add some, and refusing them would silently turn
// the webhook off.
func DecodeReview(data []byte) (*admissionv1.AdmissionReview, error) {
	var rev admissionv1.AdmissionReview
	if err := strictUnmarshal(data, "AdmissionReview", &rev); err != nil {
		return nil, err
	}
	if rev.APIVersion != admissionv1.SchemeGroupVersion.String() || rev.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("%w: apiVersion %q kind %q, want %s AdmissionReview", ErrMalformed, rev.APIVersion, rev.Kind, admissionv1.SchemeGroupVersion)
	}
	if rev.Request == nil {
		return nil, fmt.Errorf("%w: no request", ErrMalformed)
	}
	if rev.Request.UID == "" {
		return nil, fmt.Errorf("%w: request.uid is empty", ErrMalformed)
	}
	return &rev, nil
}

// Review answers one request. Anything but the CREATE of a pod is allowed unchanged; an error
// means the pod in the request cannot be read.
func (h *Handler) Review(req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: no request", ErrMalformed)
	}
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Operation != admissionv1.Create || req.Resource.Group != "" || req.Resource.Resource != "pods" || req.SubResource != "" {
		return resp, nil
	}
	raw := req.Object.Raw
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: request.object is empty", ErrMalformed)
	}
	var pod corev1.Pod
	if err := strictUnmarshal(raw, "request.object", &pod); err != nil {
		return nil, err
	}
	var shape struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := strictUnmarshal(raw, "request.object", &shape); err != nil {
		return nil, err
	}
	name := req.Name
	if name == "" {
		name = pod.Name
	}
	if name == "" && pod.GenerateName != "" {
		name = pod.GenerateName + "*"
	}
	d := h.policy.Decide(&pod)
	log := h.log.With("uid", req.UID, "namespace", req.Namespace, "pod", name, "node", d.Node)
	changes := plan(pod.Spec.Tolerations, d)
	if len(changes) == 0 {
		log.Debug("autonomy webhook: pod unchanged", "rule", d.Rule)
		return resp, nil
	}
	// A patch that does not apply makes the apiserver reject the pod whatever the
	// failurePolicy, so never patch under a spec that is not an object.
	if s := bytes.TrimSpace(shape.Spec); len(s) == 0 || s[0] != '{' {
		log.Warn("autonomy webhook: pod has no spec object; not patching")
		return resp, nil
	}
	patch, err := jsonPatch(pod.Spec.Tolerations, changes)
	if err != nil {
		return nil, err
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	log.Info("autonomy webhook: adding tolerations", "rule", d.Rule, "tolerationSeconds", FormatTolerationSeconds(d.Seconds), "changes", len(changes))
	return resp, nil
}

// strictUnmarshal decodes JSON case-sensitively, refusing duplicate keys and invalid UTF-8.
func strictUnmarshal(data []byte, what string, v any) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrMalformed, what)
	}
	strict, err := kjson.UnmarshalStrict(data, v, kjson.DisallowDuplicateFields)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("%w: %s: %w", ErrMalformed, what, errors.Join(strict...))
	}
	return nil
}
