package metaserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/skerry-io/skerry/pkg/wire"
)

func TestNewRefusesRemoteAddress(t *testing.T) {
	st := newFakeStore()
	for _, addr := range []string{"0.0.0.0:10550", ":10550", "10.0.0.1:10550", "[::]:1"} {
		if _, err := New(Config{Address: addr, Store: st}); err == nil {
			t.Errorf("New(%q) accepted a non-loopback address", addr)
		}
	}
	for _, addr := range []string{"", "127.0.0.1:10550", "[::1]:10550", "localhost:1"} {
		if _, err := New(Config{Address: addr, Store: st}); err != nil {
			t.Errorf("New(%q): %v", addr, err)
		}
	}
	if _, err := New(Config{Address: "0.0.0.0:10550", Store: st, AllowRemote: true}); err != nil {
		t.Errorf("AllowRemote: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a Store succeeded")
	}
}

func TestRunServesAndStops(t *testing.T) {
	st := newFakeStore()
	srv, err := New(Config{Address: "127.0.0.1:0", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestHealthAndDiscovery(t *testing.T) {
	e := newEnv(t, nil)
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, b := e.do("GET", p, nil, ""); code != 200 || string(b) != "ok" {
			t.Errorf("%s: %d %s", p, code, b)
		}
	}
	if v := e.getJSON("/version", 200); v["major"] != "1" {
		t.Errorf("/version: %v", v)
	}
	if v := e.getJSON("/api", 200); v["kind"] != "APIVersions" {
		t.Errorf("/api: %v", v)
	}
	core := e.getJSON("/api/v1", 200)
	short := map[string]string{}
	for _, r := range core["resources"].([]any) {
		m := r.(map[string]any)
		if sn, ok := m["shortNames"].([]any); ok {
			short[m["name"].(string)] = sn[0].(string)
		}
	}
	for res, sn := range map[string]string{"pods": "po", "configmaps": "cm", "nodes": "no", "services": "svc", "endpoints": "ep"} {
		if short[res] != sn {
			t.Errorf("short name of %s = %q, want %q", res, short[res], sn)
		}
	}
	groups := e.getJSON("/apis", 200)
	var names []string
	for _, g := range groups["groups"].([]any) {
		names = append(names, g.(map[string]any)["name"].(string))
	}
	if got := strings.Join(names, ","); !strings.Contains(got, "discovery.k8s.io") || !strings.Contains(got, "devices.kubeedge.io") {
		t.Errorf("groups = %s", got)
	}
	dev := e.getJSON("/apis/devices.kubeedge.io/v1beta1", 200)
	if dev["groupVersion"] != "devices.kubeedge.io/v1beta1" || len(dev["resources"].([]any)) != 2 {
		t.Errorf("devices discovery: %v", dev)
	}
	e.getJSON("/apis/discovery.k8s.io", 200)
	e.getJSON("/apis/apps/v1", 404)
	e.getJSON("/apis/apps/v1/deployments", 404)
}

func seedPods(e *testEnv) {
	e.store.put(podKey("default", "web-1"), pod("default", "web-1", map[string]string{"app": "web"}, "Running"))
	e.store.put(podKey("default", "web-2"), pod("default", "web-2", map[string]string{"app": "web"}, "Pending"))
	e.store.put(podKey("kube-system", "dns"), pod("kube-system", "dns", map[string]string{"app": "dns"}, "Running"))
}

func itemNames(list map[string]any) []string {
	var out []string
	for _, it := range list["items"].([]any) {
		out = append(out, it.(map[string]any)["metadata"].(map[string]any)["name"].(string))
	}
	return out
}

func TestGetAndList(t *testing.T) {
	e := newEnv(t, nil)
	seedPods(e)
	e.store.put(wire.Key{Type: wire.TypeNode, Name: "edge-1"}, map[string]any{"apiVersion": "v1", "kind": "Node", "metadata": map[string]any{"name": "edge-1"}})

	p := e.getJSON("/api/v1/namespaces/default/pods/web-1", 200)
	md := p["metadata"].(map[string]any)
	if md["resourceVersion"] != "1" || md["annotations"].(map[string]any)[CloudResourceVersionAnnotation] != "9000" {
		t.Errorf("metadata = %v", md)
	}
	if p["kind"] != "Pod" || p["apiVersion"] != "v1" {
		t.Errorf("type meta = %v %v", p["kind"], p["apiVersion"])
	}
	e.getJSON("/api/v1/namespaces/default/pods/web-1/status", 200)
	e.getJSON("/api/v1/nodes/edge-1", 200)
	e.getJSON("/api/v1/namespaces/default/nodes/edge-1", 404)

	nf := e.getJSON("/api/v1/namespaces/default/pods/nope", 404)
	if nf["kind"] != "Status" || nf["reason"] != "NotFound" || nf["message"] != `pods "nope" not found` {
		t.Errorf("404 = %v", nf)
	}
	nf = e.getJSON("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/x", 404)
	if nf["message"] != `endpointslices.discovery.k8s.io "x" not found` {
		t.Errorf("404 = %v", nf)
	}

	all := e.getJSON("/api/v1/pods", 200)
	if got := strings.Join(itemNames(all), ","); got != "web-1,web-2,dns" {
		t.Errorf("all pods = %s", got)
	}
	if all["kind"] != "PodList" || all["metadata"].(map[string]any)["resourceVersion"] != "4" {
		t.Errorf("list meta = %v %v", all["kind"], all["metadata"])
	}
	for q, want := range map[string]string{
		"/api/v1/namespaces/default/pods":                                         "web-1,web-2",
		"/api/v1/pods?labelSelector=app%3Ddns":                                    "dns",
		"/api/v1/pods?labelSelector=app+in+(web),app!=x":                          "web-1,web-2",
		"/api/v1/pods?fieldSelector=status.phase%3DRunning":                       "web-1,dns",
		"/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1,metadata.name%3Dweb-2": "web-2",
		"/api/v1/pods?fieldSelector=metadata.namespace!%3Ddefault":                "dns",
		"/api/v1/namespaces/default/pods?labelSelector=app%3Ddns":                 "",
	} {
		if got := strings.Join(itemNames(e.getJSON(q, 200)), ","); got != want {
			t.Errorf("%s = %q, want %q", q, got, want)
		}
	}
	for _, q := range []string{
		"/api/v1/pods?fieldSelector=spec.foo%3Dbar",
		"/api/v1/pods?labelSelector=a%3D%3D%3Db",
		"/api/v1/nodes?fieldSelector=metadata.namespace%3Dx",
		"/api/v1/configmaps?fieldSelector=type%3Dx",
		"/api/v1/pods?limit=-1",
		"/api/v1/pods?continue=garbage",
		"/api/v1/pods?watch=true&resourceVersion=abc",
	} {
		st := e.getJSON(q, 400)
		if st["kind"] != "Status" || st["reason"] != "BadRequest" {
			t.Errorf("%s: %v", q, st)
		}
	}
	if st := e.getJSON("/api/v1/pods?fieldSelector=spec.foo%3Dbar", 400); st["message"] != "field label not supported: spec.foo" {
		t.Errorf("message = %v", st["message"])
	}
}

func TestListPages(t *testing.T) {
	e := newEnv(t, nil)
	for i := range 5 {
		e.store.put(podKey("default", fmt.Sprintf("p%d", i)), pod("default", fmt.Sprintf("p%d", i), nil, "Running"))
	}
	var got []string
	cont := ""
	pages := 0
	for {
		l := e.getJSON("/api/v1/namespaces/default/pods?limit=2&continue="+cont, 200)
		pages++
		got = append(got, itemNames(l)...)
		md := l["metadata"].(map[string]any)
		if md["resourceVersion"] != "5" {
			t.Errorf("page rv = %v", md["resourceVersion"])
		}
		if pages == 1 {
			// A change between pages: the later pages keep the first page's revision.
			e.store.put(podKey("default", "p9"), pod("default", "p9", nil, "Running"))
		}
		c, _ := md["continue"].(string)
		if c == "" {
			break
		}
		cont = c
	}
	if strings.Join(got, ",") != "p0,p1,p2,p3,p4,p9" || pages != 3 {
		t.Errorf("pages=%d items=%v", pages, got)
	}
}

func TestTable(t *testing.T) {
	e := newEnv(t, nil)
	seedPods(e)
	e.store.put(wire.Key{Namespace: "ns", Type: wire.TypeConfigMap, Name: "c"}, configMap("ns", "c", nil))
	accept := map[string]string{"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"}
	code, b := e.do("GET", "/api/v1/namespaces/default/pods", accept, "")
	if code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	var tbl struct {
		Kind    string `json:"kind"`
		Columns []struct {
			Name string `json:"name"`
		} `json:"columnDefinitions"`
		Rows []struct {
			Cells  []any          `json:"cells"`
			Object map[string]any `json:"object"`
		} `json:"rows"`
		Metadata map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal(b, &tbl); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range tbl.Columns {
		cols = append(cols, c.Name)
	}
	if tbl.Kind != "Table" || strings.Join(cols, ",") != "Name,Ready,Status,Restarts,Age,IP,Node" || len(tbl.Rows) != 2 {
		t.Fatalf("table = %s", b)
	}
	if got := fmt.Sprint(tbl.Rows[0].Cells); got != "[web-1 1/1 Running 2 60m 10.88.0.5 edge-1]" {
		t.Errorf("row = %s", got)
	}
	if tbl.Rows[0].Object["kind"] != "PartialObjectMetadata" || tbl.Metadata["resourceVersion"] != "4" {
		t.Errorf("row object = %v, meta %v", tbl.Rows[0].Object, tbl.Metadata)
	}
	code, b = e.do("GET", "/api/v1/namespaces/ns/configmaps/c?includeObject=Object", accept, "")
	if code != 200 || !strings.Contains(string(b), `"cells":["c",1,"120m"]`) || !strings.Contains(string(b), `"kind":"ConfigMap"`) {
		t.Errorf("configmap table: %d %s", code, b)
	}
}

func TestWatch(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BookmarkInterval = 50 * time.Millisecond })
	seedPods(e)

	// No resourceVersion: the current objects as ADDED, then live changes.
	ws := e.watch("/api/v1/namespaces/default/pods?watch=true", nil)
	for _, want := range []string{"web-1", "web-2"} {
		if l := ws.next(); l.Type != "ADDED" || l.name() != want {
			t.Fatalf("initial event %v %s, want ADDED %s", l.Type, l.name(), want)
		}
	}
	rev := e.store.put(podKey("default", "web-1"), pod("default", "web-1", map[string]string{"app": "web"}, "Failed"))
	e.store.put(podKey("other", "x"), pod("other", "x", nil, "Running")) // another namespace: filtered
	e.store.delete(podKey("default", "web-2"))
	if l := ws.next(); l.Type != "MODIFIED" || l.name() != "web-1" || l.rv() != fmt.Sprint(rev) {
		t.Fatalf("got %v %s rv %s", l.Type, l.name(), l.rv())
	}
	if l := ws.next(); l.Type != "DELETED" || l.name() != "web-2" {
		t.Fatalf("got %v %s", l.Type, l.name())
	}
	ws.close()

	// From a resourceVersion with a selector: an object leaving the selection is DELETED.
	ws = e.watch("/api/v1/pods?watch=1&resourceVersion="+fmt.Sprint(rev)+"&labelSelector=app%3Dweb&allowWatchBookmarks=true", nil)
	seen := map[string]string{}
	e.store.put(podKey("default", "web-1"), pod("default", "web-1", map[string]string{"app": "other"}, "Failed"))
	e.store.put(podKey("default", "web-3"), pod("default", "web-3", map[string]string{"app": "web"}, "Running"))
	for seen["BOOKMARK"] == "" || seen["DELETED web-1"] == "" || seen["ADDED web-3"] == "" {
		l := ws.next()
		switch l.Type {
		case "BOOKMARK":
			seen["BOOKMARK"] = l.rv()
			if l.Object["kind"] != "Pod" {
				t.Errorf("bookmark object = %v", l.Object)
			}
		default:
			seen[l.Type+" "+l.name()] = l.rv()
		}
	}
	if _, ok := seen["DELETED x"]; ok {
		t.Errorf("a creation outside the selection was sent: %v", seen)
	}
	ws.close()

	// timeoutSeconds ends the stream.
	ws = e.watch("/api/v1/pods?watch=true&timeoutSeconds=1&resourceVersion=1", nil)
	if err := ws.ended(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "store watches released", func() bool { return e.store.running() == 0 })
}

func TestWatchInitialEventsEndBookmark(t *testing.T) {
	e := newEnv(t, nil)
	seedPods(e)
	ws := e.watch("/api/v1/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", nil)
	for range 3 {
		if l := ws.next(); l.Type != "ADDED" {
			t.Fatalf("got %v", l.Type)
		}
	}
	l := ws.next()
	ann, _ := l.Object["metadata"].(map[string]any)["annotations"].(map[string]any)
	if l.Type != "BOOKMARK" || l.rv() != "3" || ann["k8s.io/initial-events-end"] != "true" {
		t.Fatalf("got %v %v", l.Type, l.Object)
	}
}

func TestWatchCompacted(t *testing.T) {
	e := newEnv(t, nil)
	seedPods(e)
	e.store.compact()
	ws := e.watch("/api/v1/pods?watch=true&resourceVersion=1", nil)
	l := ws.next()
	if l.Type != "ERROR" || l.Object["code"] != float64(410) || l.Object["reason"] != "Expired" {
		t.Fatalf("got %v %v", l.Type, l.Object)
	}
	if err := ws.ended(); err != nil {
		t.Fatal(err)
	}

	// A running watch ended by compaction also gets the 410.
	ws = e.watch("/api/v1/pods?watch=true&resourceVersion=3", nil)
	waitFor(t, "store watch", func() bool { return e.store.running() == 1 })
	e.store.compact()
	if l := ws.next(); l.Type != "ERROR" || l.Object["code"] != float64(410) {
		t.Fatalf("got %v %v", l.Type, l.Object)
	}
}

func TestWatchStopsOnShutdown(t *testing.T) {
	st := newFakeStore()
	srv, err := New(Config{Address: "127.0.0.1:0", Store: st, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, store: st}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ln := listen(t)
	go func() { done <- srv.Serve(ctx, ln) }()
	e.url = "http://" + ln.Addr().String()
	ws := e.watch("/api/v1/pods?watch=true", nil)
	waitFor(t, "store watch", func() bool { return st.running() == 1 })
	start := time.Now()
	cancel()
	if err := ws.ended(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("shutdown took %v: the watch held it", d)
	}
	waitFor(t, "store watches released", func() bool { return st.running() == 0 })
}

func TestWatchTable(t *testing.T) {
	e := newEnv(t, nil)
	seedPods(e)
	ws := e.watch("/api/v1/namespaces/default/pods?watch=true&resourceVersion=3", map[string]string{"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
	e.store.put(podKey("default", "web-2"), pod("default", "web-2", nil, "Running"))
	l := ws.next()
	if l.Type != "MODIFIED" || l.Object["kind"] != "Table" || !strings.Contains(fmt.Sprint(l.Object["rows"]), "web-2") {
		t.Fatalf("got %v %v", l.Type, l.Object)
	}
}

func TestWritesOffline(t *testing.T) {
	e := newEnv(t, nil)
	e.fwd.err = fmt.Errorf("hub: %w", ErrOffline)
	code, b := e.do("PUT", "/api/v1/namespaces/default/pods/web-1/status", nil, `{"metadata":{"name":"web-1","uid":"u"},"status":{"phase":"Running"}}`)
	var st map[string]any
	_ = json.Unmarshal(b, &st)
	if code != 503 || st["kind"] != "Status" || st["reason"] != "ServiceUnavailable" || !strings.Contains(st["message"].(string), "disconnected from the cloud") {
		t.Fatalf("%d %s", code, b)
	}
	// No forwarder at all behaves the same.
	e2 := newEnv(t, func(c *Config) { c.Forwarder = nil })
	if code, b := e2.do("POST", "/api/v1/namespaces/default/events", nil, `{"metadata":{"name":"e1"}}`); code != 503 {
		t.Fatalf("%d %s", code, b)
	}
}

func TestWritesForwarded(t *testing.T) {
	e := newEnv(t, nil)
	smp := map[string]string{"Content-Type": "application/strategic-merge-patch+json"}
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
		body         string
		wantCode     int
		op           wire.Operation
		resource     string
	}{
		{"PUT", "/api/v1/namespaces/default/pods/web-1/status", nil, `{"metadata":{"name":"web-1","uid":"u"},"status":{"phase":"Running"}}`, 200, wire.OpUpdate, "default/podstatus/web-1"},
		{"PATCH", "/api/v1/namespaces/default/pods/web-1/status", smp, `{"status":{"phase":"Running"}}`, 200, wire.OpPatch, "default/podpatch/web-1"},
		{"PUT", "/api/v1/nodes/edge-1/status", nil, `{"metadata":{"name":"edge-1"},"status":{}}`, 200, wire.OpUpdate, "null/nodestatus/edge-1"},
		{"PATCH", "/api/v1/nodes/edge-1/status", smp, `{"status":{}}`, 200, wire.OpPatch, "null/nodepatch/edge-1"},
		{"POST", "/api/v1/namespaces/default/events", nil, `{"metadata":{"name":"ev.1"},"reason":"Started"}`, 201, wire.OpInsert, "default/event/ev.1"},
		{"POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", nil, `{"metadata":{"name":"edge-1"},"spec":{}}`, 201, wire.OpUpdate, "kube-node-lease/lease/edge-1"},
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1", nil, `{"metadata":{"name":"edge-1"},"spec":{}}`, 200, wire.OpUpdate, "kube-node-lease/lease/edge-1"},
	} {
		code, b := e.do(tc.method, tc.path, tc.hdr, tc.body)
		m := e.fwd.last()
		if code != tc.wantCode || m == nil || m.Route.Operation != tc.op || m.Route.Resource != tc.resource || !m.Header.Sync {
			t.Errorf("%s %s: %d %s; sent %+v", tc.method, tc.path, code, b, m)
			continue
		}
		if tc.method != "PATCH" && !strings.Contains(string(b), `"name":`) {
			t.Errorf("%s %s: answer %s", tc.method, tc.path, b)
		}
	}
	// The event body got its namespace; the answer to "OK" is what was sent.
	code, b := e.do("POST", "/api/v1/namespaces/ns1/events", nil, `{"metadata":{"generateName":"pod."},"count":1}`)
	var ev map[string]any
	_ = json.Unmarshal(b, &ev)
	md, _ := ev["metadata"].(map[string]any)
	if code != 201 || md["namespace"] != "ns1" || !strings.HasPrefix(fmt.Sprint(md["name"]), "pod.") || ev["count"] != float64(1) {
		t.Errorf("generateName event: %d %s", code, b)
	}

	// The cloud's object answer is returned as is.
	e.fwd.reply = func(m *wire.Message) *wire.Message {
		return m.Reply(json.RawMessage(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-1"},"status":{"phase":"Running"}}`))
	}
	if code, b := e.do("PATCH", "/api/v1/namespaces/default/pods/web-1/status", smp, `{"status":{}}`); code != 200 || !strings.Contains(string(b), `"kind":"Pod"`) {
		t.Errorf("patch answer: %d %s", code, b)
	}
	// A refusal maps to a Status.
	e.fwd.reply = func(m *wire.Message) *wire.Message { return m.Error("node edge-1 may not update pod default/other") }
	code, b = e.do("PUT", "/api/v1/namespaces/default/pods/other/status", nil, `{"metadata":{"name":"other"}}`)
	if code != 403 || !strings.Contains(string(b), "may not update pod") {
		t.Errorf("refusal: %d %s", code, b)
	}
	e.fwd.reply = func(m *wire.Message) *wire.Message { return m.Error("pod not found") }
	if code, _ := e.do("PUT", "/api/v1/namespaces/default/pods/other/status", nil, `{}`); code != 404 {
		t.Errorf("not found refusal: %d", code)
	}
}

func TestWritesRefused(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 1024 })
	for _, tc := range []struct {
		method, path, ct, body string
		want                   int
	}{
		{"DELETE", "/api/v1/namespaces/default/pods/web-1", "", "", 405},
		{"POST", "/api/v1/namespaces/default/pods", "", `{}`, 405},
		{"PUT", "/api/v1/namespaces/default/configmaps/c", "", `{}`, 405},
		{"POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", "", `{"metadata":{"name":"x"}}`, 405},
		{"PATCH", "/api/v1/namespaces/default/pods/web-1/status", "application/merge-patch+json", `{}`, 415},
		{"PATCH", "/api/v1/namespaces/default/pods/web-1/status", "application/json-patch+json", `[]`, 415},
		{"PUT", "/api/v1/namespaces/default/pods/web-1/status", "", `[1]`, 400},
		{"PUT", "/api/v1/namespaces/default/pods/web-1/status", "", `{"metadata":{"name":"web-2"}}`, 400},
		{"PUT", "/api/v1/namespaces/default/pods/web-1/status", "", `{"metadata":{"namespace":"x"}}`, 400},
		{"PUT", "/api/v1/namespaces/default/pods/web-1/status", "", `{} {}`, 400},
		{"POST", "/api/v1/namespaces/default/events", "", `{"metadata":{}}`, 400},
		{"POST", "/api/v1/namespaces/default/events", "", `{"metadata":{"name":"UPPER"}}`, 400},
		{"PUT", "/api/v1/namespaces/default/pods/web-1/status", "", `{"x":"` + strings.Repeat("a", 2048) + `"}`, 413},
		{"POST", "/api", "", `{}`, 405},
	} {
		hdr := map[string]string{}
		if tc.ct != "" {
			hdr["Content-Type"] = tc.ct
		}
		code, b := e.do(tc.method, tc.path, hdr, tc.body)
		var st map[string]any
		if err := json.Unmarshal(b, &st); err != nil || st["kind"] != "Status" || code != tc.want || st["code"] != float64(tc.want) {
			t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body[:min(len(tc.body), 40)], code, b, tc.want)
		}
	}
	if len(e.fwd.sent) != 0 {
		t.Errorf("refused writes were forwarded: %d", len(e.fwd.sent))
	}
}

func TestForwardTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.WriteTimeout = 50 * time.Millisecond; c.Forwarder = blockingForwarder{} })
	code, b := e.do("PUT", "/api/v1/nodes/edge-1/status", nil, `{}`)
	if code != http.StatusGatewayTimeout {
		t.Fatalf("%d %s", code, b)
	}
}

type blockingForwarder struct{}

func (blockingForwarder) Request(ctx context.Context, _ *wire.Message) (*wire.Message, error) {
	<-ctx.Done()
	return nil, fmt.Errorf("waiting for the cloud: %w", errors.Join(ctx.Err()))
}

func TestOnlyLoopbackHostsAreServed(t *testing.T) {
	srv, err := New(Config{Store: newFakeStore()})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]int{
		"127.0.0.1:10550":        http.StatusOK,
		"localhost:10550":        http.StatusOK,
		"[::1]:10550":            http.StatusOK,
		"attacker.example:10550": http.StatusForbidden, // DNS rebinding to 127.0.0.1
		"10.0.0.5:10550":         http.StatusForbidden,
	} {
		req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %s: %d, want %d", host, rec.Code, want)
		}
	}
}
