package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

var podsResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}

func testHandler(t testing.TB) *Handler {
	t.Helper()
	p, err := NewPolicy(Config{Enabled: true, DefaultTolerationSeconds: i64(3600)}, testNodes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return NewHandler(p, slog.New(slog.DiscardHandler))
}

// reviewFor is an AdmissionReview as the apiserver sends it, with object as request.object.
func reviewFor(t testing.TB, op admissionv1.Operation, res metav1.GroupVersionResource, sub string, object []byte) []byte {
	t.Helper()
	rev := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "705ab4f5-6393-11e8-b7cc-42010a800002", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: res, SubResource: sub, Namespace: "default", Operation: op,
			Object: runtime.RawExtension{Raw: object},
		},
	}
	b, err := json.Marshal(rev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func podJSON(t testing.TB, p *corev1.Pod) []byte {
	t.Helper()
	p.APIVersion, p.Kind = "v1", "Pod"
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(h http.Handler, body []byte, contentType string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// mustAllow checks a 200 answer that allows and echoes the uid, and returns its response.
func mustAllow(t testing.TB, w *httptest.ResponseRecorder) *admissionv1.AdmissionResponse {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var rev admissionv1.AdmissionReview
	if err := json.Unmarshal(w.Body.Bytes(), &rev); err != nil {
		t.Fatalf("response: %v: %s", err, w.Body)
	}
	if rev.APIVersion != "admission.k8s.io/v1" || rev.Kind != "AdmissionReview" || rev.Response == nil || rev.Request != nil {
		t.Fatalf("response review: %s", w.Body)
	}
	r := rev.Response
	if !r.Allowed || r.UID != "705ab4f5-6393-11e8-b7cc-42010a800002" {
		t.Fatalf("allowed=%v uid=%q", r.Allowed, r.UID)
	}
	if (r.Patch == nil) != (r.PatchType == nil) || (r.PatchType != nil && *r.PatchType != admissionv1.PatchTypeJSONPatch) {
		t.Fatalf("patch %q with patchType %v", r.Patch, r.PatchType)
	}
	return r
}

// patched applies the response's patch to object and decodes the result.
func patched(t testing.TB, object []byte, r *admissionv1.AdmissionResponse) *corev1.Pod {
	t.Helper()
	out, err := applyPatch(object, r.Patch)
	if err != nil {
		t.Fatalf("patch %s does not apply: %v", r.Patch, err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(out, &pod); err != nil {
		t.Fatalf("patched pod: %v", err)
	}
	return &pod
}

func TestHandlerPatchesPodWithoutTolerations(t *testing.T) {
	h := testHandler(t)
	for name, object := range map[string]string{
		"absent": `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"app-offline.kubeedge.io":"autonomy"}},"spec":{"containers":[{"name":"c","image":"i"}]}}`,
		"null":   `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"app-offline.kubeedge.io":"autonomy"}},"spec":{"containers":[{"name":"c","image":"i"}],"tolerations":null}}`,
		"empty":  `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"app-offline.kubeedge.io":"autonomy"}},"spec":{"containers":[{"name":"c","image":"i"}],"tolerations":[]}}`,
	} {
		t.Run(name, func(t *testing.T) {
			r := mustAllow(t, post(h, reviewFor(t, admissionv1.Create, podsResource, "", []byte(object)), "application/json"))
			if r.Patch == nil {
				t.Fatal("no patch")
			}
			pod := patched(t, []byte(object), r)
			want := []corev1.Toleration{
				tol(corev1.TaintNodeUnreachable, corev1.TolerationOpExists, corev1.TaintEffectNoExecute, nil),
				tol(corev1.TaintNodeNotReady, corev1.TolerationOpExists, corev1.TaintEffectNoExecute, nil),
			}
			if got := pod.Spec.Tolerations; !equalTolerations(got, want) {
				t.Errorf("tolerations = %+v", got)
			}
			if len(pod.Spec.Containers) != 1 {
				t.Errorf("containers lost: %+v", pod.Spec.Containers)
			}
		})
	}
}

func TestHandlerPatchesPodWithTolerations(t *testing.T) {
	h := testHandler(t)
	// As the apiserver sends it: the user's toleration (with a field from a newer API the
	// webhook does not know, which must survive) and the DefaultTolerationSeconds plugin's two.
	object := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"nodeName":"edge-600","containers":[{"name":"c","image":"i"}],` +
		`"tolerations":[{"key":"gpu","operator":"Exists","effect":"NoSchedule","futureField":"kept"},` +
		`{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},` +
		`{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}]}}`
	r := mustAllow(t, post(h, reviewFor(t, admissionv1.Create, podsResource, "", []byte(object)), ""))
	out, err := applyPatch([]byte(object), r.Patch)
	if err != nil {
		t.Fatalf("patch %s: %v", r.Patch, err)
	}
	if !bytes.Contains(out, []byte(`"futureField":"kept"`)) {
		t.Errorf("unknown field of an untouched toleration lost: %s", out)
	}
	pod := patched(t, []byte(object), r)
	want := []corev1.Toleration{
		tol("gpu", corev1.TolerationOpExists, corev1.TaintEffectNoSchedule, nil),
		tol(corev1.TaintNodeNotReady, corev1.TolerationOpExists, corev1.TaintEffectNoExecute, i64(600)),
		tol(corev1.TaintNodeUnreachable, corev1.TolerationOpExists, corev1.TaintEffectNoExecute, i64(600)),
	}
	if !equalTolerations(pod.Spec.Tolerations, want) {
		t.Errorf("tolerations = %+v", pod.Spec.Tolerations)
	}
}

func TestHandlerAppendsBesideOtherTolerations(t *testing.T) {
	h := testHandler(t)
	p := newPod(selecting(EdgeNodeLabel, ""))
	p.Spec.Tolerations = []corev1.Toleration{tol(corev1.TaintNodeUnreachable, corev1.TolerationOpExists, corev1.TaintEffectNoExecute, i64(30))}
	object := podJSON(t, p)
	r := mustAllow(t, post(h, reviewFor(t, admissionv1.Create, podsResource, "", object), "application/json; charset=utf-8"))
	pod := patched(t, object, r)
	want := []corev1.Toleration{
		p.Spec.Tolerations[0], // the user's 30 s stays: their choice
		tol(corev1.TaintNodeNotReady, corev1.TolerationOpExists, corev1.TaintEffectNoExecute, i64(3600)),
	}
	if !equalTolerations(pod.Spec.Tolerations, want) {
		t.Errorf("tolerations = %+v", pod.Spec.Tolerations)
	}
}

func TestHandlerLeavesUserTolerations(t *testing.T) {
	h := testHandler(t)
	p := newPod(labelled(AutonomyLabel, AutonomyLabelValue))
	p.Spec.Tolerations = []corev1.Toleration{
		tol(corev1.TaintNodeUnreachable, corev1.TolerationOpExists, corev1.TaintEffectNoExecute, i64(30)),
		tol(corev1.TaintNodeNotReady, corev1.TolerationOpExists, corev1.TaintEffectNoExecute, i64(40)),
	}
	r := mustAllow(t, post(h, reviewFor(t, admissionv1.Create, podsResource, "", podJSON(t, p)), ""))
	if r.Patch != nil {
		t.Errorf("patched a pod whose tolerations are the user's: %s", r.Patch)
	}
}

func TestHandlerPassesOtherRequests(t *testing.T) {
	h := testHandler(t)
	edgePod := podJSON(t, newPod(labelled(AutonomyLabel, AutonomyLabelValue)))
	for name, body := range map[string][]byte{
		"pod update":       reviewFor(t, admissionv1.Update, podsResource, "", edgePod),
		"pod delete":       reviewFor(t, admissionv1.Delete, podsResource, "", nil),
		"pod connect":      reviewFor(t, admissionv1.Connect, podsResource, "exec", []byte(`{"kind":"PodExecOptions"}`)),
		"binding":          reviewFor(t, admissionv1.Create, podsResource, "binding", []byte(`{"kind":"Binding"}`)),
		"eviction":         reviewFor(t, admissionv1.Create, podsResource, "eviction", []byte(`{"kind":"Eviction"}`)),
		"configmap create": reviewFor(t, admissionv1.Create, metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "", []byte(`{}`)),
		"other group pods": reviewFor(t, admissionv1.Create, metav1.GroupVersionResource{Group: "metrics.k8s.io", Version: "v1beta1", Resource: "pods"}, "", edgePod),
		"non-edge pod":     reviewFor(t, admissionv1.Create, podsResource, "", podJSON(t, newPod())),
		// Decided, but without a spec object a patch could not apply and would reject the pod.
		"no spec":   reviewFor(t, admissionv1.Create, podsResource, "", []byte(`{"metadata":{"labels":{"app-offline.kubeedge.io":"autonomy"}}}`)),
		"null spec": reviewFor(t, admissionv1.Create, podsResource, "", []byte(`{"metadata":{"labels":{"app-offline.kubeedge.io":"autonomy"}},"spec":null}`)),
	} {
		t.Run(name, func(t *testing.T) {
			if r := mustAllow(t, post(h, body, "application/json")); r.Patch != nil {
				t.Errorf("patched: %s", r.Patch)
			}
		})
	}
}

func TestHandlerRejectsMalformed(t *testing.T) {
	h := testHandler(t)
	valid := string(reviewFor(t, admissionv1.Create, podsResource, "", podJSON(t, newPod())))
	withObject := func(obj string) []byte {
		return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE","object":` + obj + `}}`)
	}
	tests := []struct {
		name, body, ctype, method string
		code                      int
		msg                       string
	}{
		{"empty", "", "", "", 400, "malformed AdmissionReview"},
		{"not json", "hello", "", "", 400, "malformed AdmissionReview"},
		{"json null", "null", "", "", 400, "apiVersion"},
		{"array", "[]", "", "", 400, "malformed AdmissionReview"},
		{"trailing data", valid + "{}", "", "", 400, "malformed AdmissionReview"},
		{"truncated", valid[:len(valid)/2], "", "", 400, "malformed AdmissionReview"},
		{"wrong version", strings.Replace(valid, "admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1), "", "", 400, "apiVersion"},
		{"wrong kind", strings.Replace(valid, `"kind":"AdmissionReview"`, `"kind":"Review"`, 1), "", "", 400, "kind"},
		{"no request", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, "", "", 400, "no request"},
		{"request null", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`, "", "", 400, "no request"},
		{"request in wrong case", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","Request":{"uid":"u"}}`, "", "", 400, "no request"},
		{"no uid", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`, "", "", 400, "uid"},
		{"duplicate key", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","kind":"AdmissionReview","request":{"uid":"u"}}`, "", "", 400, "duplicate"},
		{"uid wrong type", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}`, "", "", 400, "malformed AdmissionReview"},
		{"invalid utf-8", "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"\xff\"}}", "", "", 400, "UTF-8"},
		{"pod create without object", string(withObject("null")), "", "", 400, "request.object is empty"},
		{"pod not an object", string(withObject(`"pod"`)), "", "", 400, "request.object"},
		{"pod field wrong type", string(withObject(`{"spec":{"tolerations":"all"}}`)), "", "", 400, "request.object"},
		{"pod duplicate key", string(withObject(`{"spec":{"nodeName":"a","nodeName":"edge-600"}}`)), "", "", 400, "duplicate"},
		{"pod invalid utf-8", string(withObject("{\"metadata\":{\"name\":\"\xc3\"}}")), "", "", 400, "UTF-8"},
		{"oversize", `{"x":"` + strings.Repeat("a", MaxReviewBytes) + `"}`, "", "", 413, "over"},
		{"wrong content type", valid, "text/plain", "", 415, "Content-Type"},
		{"bad content type", valid, ";;", "", 415, "Content-Type"},
		{"GET", "", "", http.MethodGet, 405, "POST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			r := httptest.NewRequest(method, Path, strings.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.msg) {
				t.Errorf("got %d %q, want %d containing %q", w.Code, w.Body, tc.code, tc.msg)
			}
		})
	}
}

func TestDecodeReviewErrorsWrapErrMalformed(t *testing.T) {
	for _, in := range []string{"", "{", `{"apiVersion":"x"}`, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`} {
		if _, err := DecodeReview([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeReview(%q) = %v, want ErrMalformed", in, err)
		}
	}
}

func equalTolerations(a, b []corev1.Toleration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Operator != b[i].Operator || a[i].Value != b[i].Value ||
			a[i].Effect != b[i].Effect || !sameSeconds(a[i].TolerationSeconds, b[i].TolerationSeconds) {
			return false
		}
	}
	return true
}

func TestHandlerLogsPodAndNode(t *testing.T) {
	var buf bytes.Buffer
	p, err := NewPolicy(Config{Enabled: true}, testNodes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(p, slog.New(slog.NewTextHandler(&buf, nil)))
	pod := newPod(selecting(corev1.LabelHostname, "edge-unl"))
	pod.Name, pod.GenerateName = "", "web-"
	mustAllow(t, post(h, reviewFor(t, admissionv1.Create, podsResource, "", podJSON(t, pod)), ""))
	for _, want := range []string{"namespace=default", "pod=web-*", "node=edge-unl", "rule=node-annotation", "tolerationSeconds=unlimited"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log %q lacks %q", buf.String(), want)
		}
	}
}
