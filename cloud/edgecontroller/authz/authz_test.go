package authz

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

// fakeScope is a fixed graph: pods bound to nodes, and the objects each node may read.
type fakeScope struct {
	pods    map[string]string    // "ns/name" -> node
	devices map[string][2]string // "ns/name" -> node, uid
	reads   map[string]map[wire.Key]bool
}

func (s fakeScope) Device(namespace, name string) (string, string, bool) {
	d, ok := s.devices[namespace+"/"+name]
	return d[0], d[1], ok
}

func (s fakeScope) Allows(node string, key wire.Key) bool { return s.reads[node][key] }

func (s fakeScope) PodNode(namespace, name string) (string, bool) {
	n, ok := s.pods[namespace+"/"+name]
	return n, ok
}

func testScope() fakeScope {
	return fakeScope{
		pods: map[string]string{"default/web-1": "edge-1", "default/web-2": "edge-2", "ns2/db-1": "edge-1"},
		devices: map[string][2]string{"default/thermo": {"edge-1", "uid-thermo"}, "default/pump": {"edge-2", "uid-pump"},
			"default/away": {"cloud-1", "uid-away"}},
		reads: map[string]map[wire.Key]bool{
			"edge-1": {
				{Type: wire.TypeNode, Name: "edge-1"}:                                    true,
				{Namespace: "default", Type: wire.TypeDevice, Name: "thermo"}:            true,
				{Namespace: "default", Type: wire.TypeDeviceModel, Name: "thermo-m"}:     true,
				{Namespace: "default", Type: wire.TypeConfigMap, Name: "cfg-1"}:          true,
				{Namespace: "default", Type: wire.TypeSecret, Name: "shared"}:            true,
				{Namespace: "default", Type: wire.TypeServiceAccountToken, Name: "sa-1"}: true,
				{Namespace: "default", Type: wire.TypePod, Name: "web-1"}:                true,
			},
			"edge-2": {
				{Namespace: "default", Type: wire.TypeConfigMap, Name: "cfg-2"}: true,
				{Namespace: "default", Type: wire.TypeSecret, Name: "shared"}:   true,
				{Type: wire.TypeNode, Name: "edge-1"}:                           true,
				{Type: wire.TypeNode, Name: "edge-2"}:                           true,
				{Namespace: "default", Type: wire.TypeDevice, Name: "pump"}:     true,
			},
		},
	}
}

func msg(op wire.Operation, res string, content string) *wire.Message {
	if content == "" {
		content = "null"
	}
	return wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: op, Resource: res}, json.RawMessage(content))
}

func devStatus(ns, name, uid string) string {
	return `{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceStatus","metadata":{"namespace":"` + ns + `","name":"` + name +
		`","ownerReferences":[{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","name":"` + name + `","uid":"` + uid +
		`","controller":true}]},"status":{"state":"online"}}`
}

func event(kind, ns, name string) string {
	return `{"metadata":{"name":"e","namespace":"` + ns + `"},"reason":"Started","involvedObject":{"kind":"` +
		kind + `","namespace":"` + ns + `","name":"` + name + `"},"count":1}`
}

// Each row is one rule, read as: node <node> sending <op> <resource> is allowed, or refused
// with a reason containing <why> and counted under <class>.
func TestAuthorize(t *testing.T) {
	const ok = ""
	tests := []struct {
		node    string
		op      wire.Operation
		res     string
		content string
		why     string
		class   Class
	}{
		// Node: register and update only itself.
		{"edge-1", wire.OpInsert, "null/node/edge-1", "", ok, ""},
		{"edge-1", wire.OpUpdate, "null/node/edge-1", "", ok, ""},
		{"edge-1", wire.OpUpdate, "null/nodestatus/edge-1", "", ok, ""},
		{"edge-1", wire.OpInsert, "null/nodestatus/edge-1", "", ok, ""},
		{"edge-1", wire.OpPatch, "null/nodepatch/edge-1", "", ok, ""},
		{"edge-1", wire.OpInsert, "null/node/edge-2", "", "only its own Node", ClassForeignNode},
		{"edge-1", wire.OpUpdate, "null/nodestatus/edge-2", "", "only its own Node", ClassForeignNode},
		{"edge-1", wire.OpPatch, "null/nodepatch/edge-2", "", "only its own Node", ClassForeignNode},
		// KubeEdge edges send node status under their own namespace token (spec §2).
		{"edge-1", wire.OpUpdate, "default/nodestatus/edge-1", "", ok, ""},
		{"edge-1", wire.OpPatch, "default/nodepatch/edge-1", "", ok, ""},
		{"edge-1", wire.OpUpdate, "default/nodestatus/edge-2", "", "only its own Node", ClassForeignNode},
		{"edge-1", wire.OpInsert, "default/node/edge-1", "", "namespace token must be", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/node/edge-1", "", "namespace token must be", ClassMalformed},
		{"edge-1", wire.OpUpdate, "null/nodestatus", "", "no rule allows", ClassUnsupported},
		{"edge-1", wire.OpDelete, "null/node/edge-1", "", "may not delete its own Node", ClassUnsupported},
		{"edge-1", wire.OpDelete, "null/node/edge-2", "", "only its own Node", ClassForeignNode},
		{"edge-1", wire.OpUpload, "null/node/edge-1", "", "no rule allows", ClassUnsupported},
		// Node reads: itself always, others only through the graph.
		{"edge-1", wire.OpQuery, "null/node/edge-1", "", ok, ""},
		{"edge-1", wire.OpQuery, "null/node/edge-2", "", "no pod of this node references it", ClassUnreferenced},
		{"edge-2", wire.OpQuery, "null/node/edge-1", "", ok, ""},
		{"edge-1", wire.OpQuery, "null/node", "", "may not list", ClassUnsupported},
		// Lease: only its own, in kube-node-lease.
		{"edge-1", wire.OpInsert, "kube-node-lease/lease/edge-1", "", ok, ""},
		{"edge-1", wire.OpUpdate, "kube-node-lease/lease/edge-1", "", ok, ""},
		{"edge-1", wire.OpQuery, "kube-node-lease/lease/edge-1", "", ok, ""},
		{"edge-1", wire.OpUpdate, "kube-node-lease/lease/edge-2", "", "only its own lease", ClassForeignNode},
		{"edge-1", wire.OpUpdate, "default/lease/edge-1", "", "only its own lease", ClassForeignNode},
		{"edge-1", wire.OpUpdate, "null/lease/edge-1", "", "only its own lease", ClassForeignNode},
		{"edge-1", wire.OpDelete, "kube-node-lease/lease/edge-1", "", "no rule allows", ClassUnsupported},
		// Pod status: only of pods bound to the node.
		{"edge-1", wire.OpUpdate, "default/podstatus/web-1", "", ok, ""},
		{"edge-1", wire.OpPatch, "default/podpatch/web-1", "", ok, ""},
		{"edge-1", wire.OpUpdate, "ns2/podstatus/db-1", "", ok, ""},
		{"edge-1", wire.OpUpdate, "default/podstatus/web-2", "",
			`node "edge-1" may not update pod status of default/web-2: the pod is bound to "edge-2"`, ClassForeignPod},
		{"edge-1", wire.OpPatch, "default/podpatch/web-2", "", `bound to "edge-2"`, ClassForeignPod},
		{"edge-1", wire.OpUpdate, "default/podstatus/ghost", "", "not bound to this node", ClassForeignPod},
		{"edge-1", wire.OpUpdate, "ns2/podstatus/web-1", "", "not bound to this node", ClassForeignPod},
		{"edge-1", wire.OpUpdate, "null/podstatus/web-1", "", "needs a namespace", ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/podstatus", "", "needs a namespace and a name", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/podstatus/web-1", "", "no rule allows", ClassUnsupported},
		// Pod delete (mirror pods, end of graceful deletion): only bound pods.
		{"edge-1", wire.OpDelete, "default/pod/web-1", "", ok, ""},
		{"edge-1", wire.OpDelete, "default/pod/web-2", "", `may not delete pod default/web-2: the pod is bound to "edge-2"`, ClassForeignPod},
		{"edge-1", wire.OpDelete, "default/pod/ghost", "", "not bound", ClassForeignPod},
		{"edge-1", wire.OpInsert, "default/pod/web-1", `{"metadata":{"name":"web-1"},"spec":{"nodeName":"edge-1"}}`,
			"node can only create mirror pods", ClassUnsupported},
		{"edge-1", wire.OpUpdate, "default/pod/web-1", "", "no rule allows", ClassUnsupported},
		// Reads: single objects in the graph.
		{"edge-1", wire.OpQuery, "default/configmap/cfg-1", "", ok, ""},
		{"edge-1", wire.OpQuery, "default/secret/shared", "", ok, ""},
		{"edge-2", wire.OpQuery, "default/secret/shared", "", ok, ""},
		{"edge-1", wire.OpQuery, "default/serviceaccounttoken/sa-1", "", ok, ""},
		{"edge-1", wire.OpQuery, "default/pod/web-1", "", ok, ""},
		{"edge-1", wire.OpQuery, "default/configmap/cfg-2", "", "no pod of this node references it", ClassUnreferenced},
		{"edge-1", wire.OpQuery, "default/pod/web-2", "", "references it", ClassUnreferenced},
		{"edge-1", wire.OpQuery, "kube-system/secret/shared", "", "references it", ClassUnreferenced},
		{"edge-1", wire.OpQuery, "default/configmap", "", "may not list", ClassUnsupported},
		{"edge-1", wire.OpQuery, "default/secret", "", "may not list", ClassUnsupported},
		{"edge-1", wire.OpQuery, "null/secret/shared", "", "wrong namespace token", ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/configmap/cfg-1", "", "no rule allows", ClassUnsupported},
		{"edge-1", wire.OpQuery, "default/service/web", "", "no rule allows", ClassUnsupported},
		{"edge-1", wire.OpQuery, "default/endpoints/web", "", "no rule allows", ClassUnsupported},
		// Events: about itself or its pods.
		{"edge-1", wire.OpInsert, "default/event/e1", event("Node", "", "edge-1"), ok, ""},
		{"edge-1", wire.OpInsert, "default/event/e1", event("Pod", "default", "web-1"), ok, ""},
		{"edge-1", wire.OpInsert, "default/event/e1", event("Node", "", "edge-2"), `about Node "edge-2"`, ClassForeignNode},
		{"edge-1", wire.OpInsert, "default/event/e1", event("Pod", "default", "web-2"), `about pod default/web-2 and the pod is bound to "edge-2"`, ClassForeignPod},
		{"edge-1", wire.OpInsert, "default/event/e1", event("Pod", "default", "ghost"), "not bound", ClassForeignPod},
		{"edge-1", wire.OpInsert, "ns2/event/e1", event("Pod", "default", "web-1"), "in the pod's namespace", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1", event("Secret", "default", "shared"), "not a \"Secret\"", ClassUnsupported},
		{"edge-1", wire.OpInsert, "null/event/e1", event("Node", "", "edge-1"), "needs a namespace", ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/event/e1", event("Node", "", "edge-1"), "no rule allows", ClassUnsupported},
		// Events: content read strictly.
		{"edge-1", wire.OpInsert, "default/event/e1", "", "want a JSON object", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1", `"hello"`, "want a JSON object", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1", `{"reason":"x"}`, "no involvedObject", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1", `{"involvedObject":{"kind":"Node","name":"edge-1"}`, "event content", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1", `{"involvedObject":{"kind":"Node","name":"edge-1"}}{}`, "trailing data", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1", `{"involvedObject":{"kind":"Node","name":7}}`, "not a string", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1", `{"involvedObject":[]}`, "want a JSON object", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1",
			`{"involvedObject":{"kind":"Node","name":"edge-1"},"involvedObject":{"kind":"Node","name":"edge-2"}}`, "duplicate involvedObject", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1",
			`{"involvedObject":{"kind":"Node","name":"edge-1"},"InvolvedObject":{"kind":"Node","name":"edge-2"}}`, "ambiguous key", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1",
			`{"involvedObject":{"kind":"Node","name":"edge-1","name":"edge-2"}}`, `duplicate "name"`, ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1",
			`{"involvedObject":{"kind":"Node","name":"edge-1","\u212Aind":"Pod"}}`, "ambiguous key", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/event/e1", `{"involvedObject":{"kind":"Node","name":"edge-1"},"x":[1,{"a":` + strings.Repeat(" ", maxEventContent) + `}]}`, "larger than", ClassMalformed},
		// Malformed resources: refused, never a panic.
		{"edge-1", wire.OpUpdate, "", "", "want <namespace>", ClassMalformed},
		{"edge-1", wire.OpUpdate, "podstatus", "", "want <namespace>", ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/podstatus/web-1/extra", "", "too many segments", ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/podstatus/", "", "trailing slash", ClassMalformed},
		{"edge-1", wire.OpUpdate, "/podstatus/web-1", "", "namespace", ClassMalformed},
		{"edge-1", wire.OpUpdate, "Default/podstatus/web-1", "", "DNS-1123", ClassMalformed},
		{"edge-1", wire.OpUpdate, "node/edge-1/null/nodestatus/edge-1", "", "too many segments", ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/PodStatus/web-1", "", "lowercase letters", ClassMalformed},
		// Device status: only of the very Device bound to the node, named as the resource.
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo", devStatus("default", "thermo", "uid-thermo"), ok, ""},
		{"edge-1", wire.OpUpdate, "default/devicestatus/pump", devStatus("default", "pump", "uid-pump"), `bound to "edge-2"`, ClassForeignDevice},
		{"edge-1", wire.OpUpdate, "default/devicestatus/away", devStatus("default", "away", "uid-away"), `bound to "cloud-1"`, ClassForeignDevice},
		{"edge-1", wire.OpUpdate, "default/devicestatus/ghost", devStatus("default", "ghost", "u"), "not bound to this node", ClassForeignDevice},
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo", devStatus("default", "thermo", "uid-old"), "re-created", ClassForeignDevice},
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo", devStatus("default", "pump", "uid-thermo"), `names device status "default"/"pump"`, ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo",
			`{"metadata":{"namespace":"default","name":"thermo","ownerReferences":[{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","name":"pump","uid":"uid-thermo","controller":true}]}}`,
			"its Device's name", ClassMalformed},
		// Keys are case-sensitive, as for the API server: "Name" is an unknown field.
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo",
			`{"metadata":{"namespace":"default","name":"thermo","Name":"pump","ownerReferences":[{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","name":"thermo","uid":"uid-thermo","controller":true}]}}`,
			ok, ""},
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo", devStatus("other", "thermo", "uid-thermo"), `names device status "other"/"thermo"`, ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo", `{"metadata":{"namespace":"default","name":"thermo"}}`, "exactly one owner", ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo",
			`{"metadata":{"namespace":"default","name":"thermo","ownerReferences":[{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","name":"thermo","uid":"uid-thermo"}]}}`,
			"controller reference", ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo",
			`{"metadata":{"namespace":"default","name":"thermo","ownerReferences":[{"apiVersion":"v1","kind":"Pod","name":"thermo","uid":"uid-thermo","controller":true}]}}`,
			"must be a devices.kubeedge.io/v1beta1 Device", ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo",
			`{"metadata":{"namespace":"default","name":"thermo","name":"pump","ownerReferences":[]}}`, "duplicate", ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo", `[]`, "JSON object", ClassMalformed},
		{"edge-1", wire.OpUpdate, "default/devicestatus/thermo", "", "JSON object", ClassMalformed},
		{"edge-1", wire.OpInsert, "default/devicestatus/thermo", devStatus("default", "thermo", "uid-thermo"), "no rule allows", ClassUnsupported},
		{"edge-1", wire.OpUpdate, "null/devicestatus/thermo", "", "namespace and a name", ClassMalformed},
		// Devices and models are read like ConfigMaps: only the node's own.
		{"edge-1", wire.OpQuery, "default/device/thermo", "", ok, ""},
		{"edge-1", wire.OpQuery, "default/devicemodel/thermo-m", "", ok, ""},
		{"edge-1", wire.OpQuery, "default/device/pump", "", "not one of this node's devices", ClassUnreferenced},
		{"edge-1", wire.OpQuery, "default/device", "", "only single objects", ClassUnsupported},
		{"edge-1", wire.OpUpdate, "default/device/thermo", "", "no rule allows", ClassUnsupported},
		{"edge-1", wire.OpUpdate, "default/twin/thermo", "", "no rule allows", ClassUnsupported},
		// MQTT uploads: any registered edge node, to null/mqttupload only.
		{"edge-1", wire.OpPublish, "null/mqttupload", `{"topic":"$hw/events/upload/x","payload":""}`, ok, ""},
		{"edge-9", wire.OpPublish, "null/mqttupload", "", "not a registered edge node", ClassForeignNode},
		{"edge-1", wire.OpPublish, "default/mqttupload", "", "uploads are published to null/mqttupload", ClassMalformed},
		{"edge-1", wire.OpPublish, "null/mqttupload/x", "", "uploads are published to", ClassMalformed},
		{"edge-1", wire.OpUpdate, "null/mqttupload", "", "no rule allows", ClassUnsupported},
		// Hub-level messages never belong here; if one arrives it is refused.
		{"edge-1", wire.OpKeepalive, "null/node", "", "no rule allows", ClassUnsupported},
		{"edge-1", wire.OpResponse, "default/pod/web-1", "", "no rule allows", ClassUnsupported},
		{"edge-1", wire.OpError, "default/podstatus/web-1", "", "no rule allows", ClassUnsupported},
		{"edge-1", "frobnicate", "null/node/edge-1", "", "no rule allows", ClassUnsupported},
	}
	for _, tt := range tests {
		a := New(testScope(), nil)
		m := msg(tt.op, tt.res, tt.content)
		d := a.Authorize(tt.node, m)
		name := tt.node + " " + string(tt.op) + " " + tt.res
		if tt.why == ok {
			if !d.Allowed {
				t.Errorf("%s: refused (%s: %s), want allowed", name, d.Class, d.Reason)
			}
			continue
		}
		if d.Allowed {
			t.Errorf("%s: allowed, want refused with %q", name, tt.why)
			continue
		}
		if !strings.Contains(d.Reason, tt.why) || d.Class != tt.class {
			t.Errorf("%s: refused as %s %q, want %s containing %q", name, d.Class, d.Reason, tt.class, tt.why)
		}
		if !strings.HasPrefix(d.Reason, `node "`+tt.node+`" may not `) {
			t.Errorf("%s: reason %q does not start by naming the node", name, d.Reason)
		}
		if got := a.Denials()[tt.class]; got != 1 {
			t.Errorf("%s: %s counted %d times, want 1", name, tt.class, got)
		}
	}
}

func TestDenialIsLoggedWithoutContent(t *testing.T) {
	var buf bytes.Buffer
	a := New(testScope(), slog.New(slog.NewJSONHandler(&buf, nil)))
	a.Authorize("edge-1", msg(wire.OpInsert, "default/event/e1", `{"involvedObject":{"kind":"Node","name":"edge-2"},"message":"s3cr3t"}`))
	a.Authorize("edge-1", msg(wire.OpUpdate, "default/podstatus/web-1", "")) // allowed: not logged
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("want exactly one JSON log line, got %q: %v", buf.String(), err)
	}
	for k, want := range map[string]string{"node": "edge-1", "operation": "insert", "resource": "default/event/e1", "class": "foreign-node"} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %q", k, line[k], want)
		}
	}
	if strings.Contains(buf.String(), "s3cr3t") {
		t.Errorf("log carries the content: %s", buf.String())
	}
}

func TestDenialsCountsByClass(t *testing.T) {
	a := New(testScope(), nil)
	a.Authorize("edge-1", msg(wire.OpUpdate, "null/nodestatus/edge-2", ""))
	a.Authorize("edge-1", msg(wire.OpUpdate, "null/nodestatus/edge-3", ""))
	a.Authorize("edge-1", msg(wire.OpQuery, "default/secret/other", ""))
	a.Authorize("edge-1", msg(wire.OpQuery, "default/secret/shared", ""))
	got := a.Denials()
	want := map[Class]uint64{ClassForeignNode: 2, ClassUnreferenced: 1, ClassForeignPod: 0, ClassForeignDevice: 0, ClassUnsupported: 0, ClassMalformed: 0}
	for c, n := range want {
		if got[c] != n {
			t.Errorf("Denials()[%s] = %d, want %d", c, got[c], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Denials() = %v, want every class", got)
	}
}
