package metaserver

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

func TestTablesOfEveryKind(t *testing.T) {
	e := newEnv(t, nil)
	objs := map[string]struct {
		key     wire.Key
		content string
		path    string
		cells   string
	}{
		"node": {wire.Key{Type: wire.TypeNode, Name: "edge-1"},
			`{"kind":"Node","apiVersion":"v1","metadata":{"name":"edge-1","labels":{"node-role.kubernetes.io/edge":""},"creationTimestamp":"2026-11-20T00:00:00Z"},"spec":{"unschedulable":true},"status":{"conditions":[{"type":"Ready","status":"True"}],"nodeInfo":{"kubeletVersion":"v1.36.3"}}}`,
			"/api/v1/nodes", `["edge-1","Ready,SchedulingDisabled","edge","2d","v1.36.3"]`},
		"secret": {wire.Key{Namespace: "d", Type: wire.TypeSecret, Name: "s"},
			`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"d"},"type":"Opaque","data":{"a":"eA==","b":"eQ=="}}`,
			"/api/v1/namespaces/d/secrets", `["s","Opaque",2,"\u003cunknown\u003e"]`},
		"service": {wire.Key{Namespace: "d", Type: wire.TypeService, Name: "svc"},
			`{"kind":"Service","apiVersion":"v1","metadata":{"name":"svc","namespace":"d"},"spec":{"type":"ClusterIP","clusterIP":"10.0.0.1","ports":[{"port":80,"protocol":"TCP"}]}}`,
			"/api/v1/services", `["svc","ClusterIP","10.0.0.1","80/TCP","\u003cunknown\u003e"]`},
		"endpoints": {wire.Key{Namespace: "d", Type: wire.TypeEndpoints, Name: "svc"},
			`{"kind":"Endpoints","apiVersion":"v1","metadata":{"name":"svc","namespace":"d"},"subsets":[{"addresses":[{"ip":"1.1.1.1"},{"ip":"1.1.1.2"}],"ports":[{"port":80}]}]}`,
			"/api/v1/namespaces/d/endpoints", `["svc","1.1.1.1:80,1.1.1.2:80","\u003cunknown\u003e"]`},
		"slice": {wire.Key{Namespace: "d", Type: TypeEndpointSlice, Name: "svc-1"},
			`{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"svc-1","namespace":"d"},"addressType":"IPv4","endpoints":[{"addresses":["1.1.1.1"]}]}`,
			"/apis/discovery.k8s.io/v1/endpointslices", `["svc-1","IPv4","1.1.1.1","\u003cunknown\u003e"]`},
		"device": {wire.Key{Namespace: "d", Type: wire.TypeDevice, Name: "thermo"},
			`{"kind":"Device","apiVersion":"devices.kubeedge.io/v1beta1","metadata":{"name":"thermo","namespace":"d"},"spec":{"deviceModelRef":{"name":"m"}}}`,
			"/apis/devices.kubeedge.io/v1beta1/namespaces/d/devices", `["thermo","m","\u003cunknown\u003e"]`},
		"devicemodel": {wire.Key{Namespace: "d", Type: wire.TypeDeviceModel, Name: "m"},
			`{"metadata":{"name":"m"}}`,
			"/apis/devices.kubeedge.io/v1beta1/devicemodels", `["m","\u003cunknown\u003e"]`},
		"podbroken": {wire.Key{Namespace: "d", Type: wire.TypePod, Name: "p"},
			`{"metadata":{"name":"p","deletionTimestamp":"2026-11-21T00:00:00Z"},"spec":{"containers":"oops"}}`,
			"/api/v1/namespaces/d/pods", `["p","\u003cunknown\u003e","\u003cunknown\u003e","\u003cunknown\u003e","\u003cunknown\u003e","\u003cnone\u003e","\u003cnone\u003e"]`},
	}
	for _, o := range objs {
		e.store.put(o.key, json.RawMessage(o.content))
	}
	for name, o := range objs {
		code, b := e.do("GET", o.path, map[string]string{"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}, "")
		if code != 200 || !strings.Contains(string(b), `"cells":`+o.cells) {
			t.Errorf("%s: %d %s\nwant cells %s", name, code, b, o.cells)
		}
	}
	// A content without kind gets the resource's.
	dm := e.getJSON("/apis/devices.kubeedge.io/v1beta1/namespaces/d/devicemodels/m", 200)
	if dm["kind"] != "DeviceModel" || dm["apiVersion"] != "devices.kubeedge.io/v1beta1" {
		t.Errorf("devicemodel = %v", dm)
	}
	// Metadata-only lists, for metadata informers.
	code, b := e.do("GET", "/api/v1/services", map[string]string{"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"}, "")
	if code != 200 || !strings.Contains(string(b), `"kind":"PartialObjectMetadataList"`) || strings.Contains(string(b), "clusterIP") {
		t.Errorf("partial list: %d %s", code, b)
	}
}

func TestLegacyWatchPath(t *testing.T) {
	e := newEnv(t, nil)
	seedPods(e)
	ws := e.watch("/api/v1/watch/namespaces/default/pods/web-2", nil)
	if l := ws.next(); l.Type != "ADDED" || l.name() != "web-2" {
		t.Fatalf("got %v %s", l.Type, l.name())
	}
	e.store.put(podKey("default", "web-1"), pod("default", "web-1", nil, "Running"))
	e.store.put(podKey("default", "web-2"), pod("default", "web-2", nil, "Running"))
	if l := ws.next(); l.Type != "MODIFIED" || l.name() != "web-2" {
		t.Fatalf("got %v %s", l.Type, l.name())
	}
}
