package metaserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"/api/v1/pods", "/api/v1/namespaces/default/pods/web-1/status", "/apis/discovery.k8s.io/v1/watch/namespaces/x/endpointslices",
		"/api/v1/namespaces/x", "/api/v1/watch", "/apis//v1/pods", "/api/v1/namespaces/a/pods/b/c/d", "/api/v1/../pods",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		ri, err := parsePath(path)
		if err != nil {
			return
		}
		for _, s := range []string{ri.namespace, ri.resource, ri.name, ri.subresource, ri.gv.Group, ri.gv.Version} {
			if strings.Contains(s, "/") {
				t.Fatalf("%q: segment %q contains a slash", path, s)
			}
		}
		if ri.resource == "" || ri.gv.Version == "" {
			t.Fatalf("%q: parsed without resource or version: %+v", path, ri)
		}
	})
}

func FuzzSelectors(f *testing.F) {
	f.Add("app=web,tier!=db", "status.phase=Running")
	f.Add("app in (a,b),!x", "metadata.name!=x,spec.nodeName==n")
	f.Add("a=", "=b")
	f.Add("x,(", "spec.hostNetwork=true")
	cat := newCatalog()
	pods := cat.lookup(coreV1, "pods")
	b, _ := json.Marshal(pod("default", "p", map[string]string{"app": "web"}, "Running"))
	it, err := decodeItem(pods, Object{Key: podKey("default", "p"), Revision: 1, Content: b})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, label, field string) {
		sel, err := parseSelectors(pods, label, field)
		if err != nil {
			return
		}
		_ = it.matches(sel)
		_ = sel.empty()
	})
}

// FuzzHandler drives the whole handler with arbitrary requests: it must never panic and must
// always answer with a code, JSON Status bodies for errors.
func FuzzHandler(f *testing.F) {
	f.Add("GET", "/api/v1/pods?labelSelector=app%3Dweb&limit=1", "", "", "")
	f.Add("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1&fieldSelector=status.phase%3DRunning", "", "", "")
	f.Add("GET", "/api/v1/pods/x", "application/json;as=Table;v=v1;g=meta.k8s.io", "", "")
	f.Add("PUT", "/api/v1/namespaces/default/pods/p/status", "", "application/json", `{"metadata":{"name":"p"}}`)
	f.Add("PATCH", "/api/v1/nodes/n/status", "", "application/strategic-merge-patch+json", `{"status":{}}`)
	f.Add("POST", "/api/v1/namespaces/default/events", "", "", `{"metadata":{"generateName":"x"}}`)
	f.Add("GET", "/apis/devices.kubeedge.io/v1beta1", "", "", "")
	st := newFakeStore()
	st.put(podKey("default", "p"), pod("default", "p", map[string]string{"app": "web"}, "Running"))
	st.put(wire.Key{Type: wire.TypeNode, Name: "n"}, json.RawMessage(`{"metadata":{"name":"n","labels":{"a":1}},"status":[]}`))
	st.put(wire.Key{Namespace: "default", Type: wire.TypeConfigMap, Name: "bad"}, json.RawMessage(`[1,2]`))
	srv, err := New(Config{Store: st, Forwarder: &fakeForwarder{}, MaxBodyBytes: 4096})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, method, target, accept, contentType, body string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // watches end at once
		req, err := http.NewRequestWithContext(ctx, method, "http://127.0.0.1:10550"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Accept", accept)
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("%s %s: code %d", method, target, rec.Code)
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") == "application/json" {
			var s struct{ Kind string }
			if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || s.Kind != "Status" {
				t.Fatalf("%s %s: %d body %q", method, target, rec.Code, rec.Body.String())
			}
		}
	})
}
