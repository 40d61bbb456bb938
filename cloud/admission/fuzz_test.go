package admission

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// FuzzHandler feeds arbitrary bodies to the handler. Properties: no panic; a known status; a
// 200 is an allowing review echoing the uid; and a patch, when present, applies to the object
// the request carried (a patch that does not apply would make the apiserver reject the pod) and
// leaves a pod tolerating both taints.
func FuzzHandler(f *testing.F) {
	h := testHandler(f)
	edgePod := newPod(selecting(EdgeNodeLabel, ""))
	withDefaults := newPod(onNode("edge-600"))
	withDefaults.Spec.Tolerations = []corev1.Toleration{pluginDefault(corev1.TaintNodeNotReady), pluginDefault(corev1.TaintNodeUnreachable)}
	for _, seed := range [][]byte{
		reviewFor(f, admissionv1.Create, podsResource, "", podJSON(f, edgePod)),
		reviewFor(f, admissionv1.Create, podsResource, "", podJSON(f, withDefaults)),
		reviewFor(f, admissionv1.Create, podsResource, "", []byte(`{"metadata":{"labels":{"app-offline.kubeedge.io":"autonomy"}},"spec":{"tolerations":null}}`)),
		reviewFor(f, admissionv1.Update, podsResource, "", podJSON(f, edgePod)),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","resource":{"resource":"pods"},"operation":"CREATE","object":{"spec":[]}}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","uid":"v"}}`),
		[]byte("null"), []byte(""), []byte("{"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body)))
		switch w.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			return
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		rev, err := DecodeReview(body)
		if err != nil {
			t.Fatalf("handler answered 200 to a review DecodeReview refuses: %v", err)
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("response %s: %v", w.Body, err)
		}
		r := out.Response
		if !r.Allowed || r.UID != rev.Request.UID {
			t.Fatalf("allowed=%v uid=%q, request uid %q", r.Allowed, r.UID, rev.Request.UID)
		}
		if r.Patch == nil {
			return
		}
		if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
			t.Fatalf("patch without JSONPatch type")
		}
		patchedJSON, err := applyPatch(rev.Request.Object.Raw, r.Patch)
		if err != nil {
			t.Fatalf("patch %s does not apply to %s: %v", r.Patch, rev.Request.Object.Raw, err)
		}
		var pod corev1.Pod
		if err := json.Unmarshal(patchedJSON, &pod); err != nil {
			t.Fatalf("patched pod %s: %v", patchedJSON, err)
		}
		for _, key := range AutonomyTaintKeys() {
			ok := false
			for _, tl := range pod.Spec.Tolerations {
				ok = ok || covers(tl, key)
			}
			if !ok {
				t.Fatalf("patched pod does not tolerate %s: %+v", key, pod.Spec.Tolerations)
			}
		}
	})
}

// FuzzPodObject fuzzes only request.object inside a well-formed pod CREATE review, where the
// policy and the patch logic run; FuzzHandler's random bodies seldom get that far.
func FuzzPodObject(f *testing.F) {
	h := testHandler(f)
	withDefaults := newPod(onNode("edge-unl"))
	withDefaults.Spec.Tolerations = []corev1.Toleration{pluginDefault(corev1.TaintNodeNotReady), {Key: "x", Operator: corev1.TolerationOpExists}, pluginDefault(corev1.TaintNodeUnreachable)}
	for _, seed := range [][]byte{
		podJSON(f, newPod(selecting(EdgeNodeLabel, ""))),
		podJSON(f, withDefaults),
		podJSON(f, newPod(affinity(term(EdgeNodeLabel, corev1.NodeSelectorOpExists)))),
		[]byte(`{"metadata":{"labels":{"app-offline.kubeedge.io":"autonomy"}},"spec":{"tolerations":null}}`),
		[]byte(`{"metadata":{"labels":{"app-offline.kubeedge.io":"autonomy"}},"spec":{"tolerations":[{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}]}}`),
		[]byte(`{"spec":{"nodeSelector":{"kubernetes.io/hostname":"edge-bad"},"tolerations":[]}}`),
		[]byte(`{"spec":{"nodeName":"edge-600"}}`),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, object []byte) {
		if !json.Valid(object) {
			return
		}
		body := reviewFor(t, admissionv1.Create, podsResource, "", object)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body)))
		if w.Code == http.StatusBadRequest {
			return
		}
		r := mustAllow(t, w)
		if r.Patch == nil {
			return
		}
		rev, err := DecodeReview(body)
		if err != nil {
			t.Fatal(err)
		}
		pod := patched(t, rev.Request.Object.Raw, r)
		for _, key := range AutonomyTaintKeys() {
			ok := false
			for _, tl := range pod.Spec.Tolerations {
				ok = ok || covers(tl, key)
			}
			if !ok {
				t.Fatalf("patched pod does not tolerate %s: %+v", key, pod.Spec.Tolerations)
			}
		}
	})
}
