package authz

import (
	"encoding/json"
	"testing"

	kjson "sigs.k8s.io/json"

	"github.com/skerry-io/skerry/pkg/wire"
)

// FuzzAuthorize: no input panics, and nothing about edge-2's objects is ever allowed to
// edge-1. The property is checked independently of the rules: the object a permitted message
// touches must belong to edge-1, and an event is re-read with encoding/json, the parser its
// consumers use, so a content trick that fools the authorizer fails here.
func FuzzAuthorize(f *testing.F) {
	for _, s := range []struct{ op, res, content string }{
		{"update", "null/nodestatus/edge-1", "null"},
		{"update", "null/nodestatus/edge-2", "null"},
		{"update", "kube-node-lease/lease/edge-2", "null"},
		{"patch", "default/podpatch/web-2", "null"},
		{"delete", "default/pod/web-2", "null"},
		{"query", "default/configmap/cfg-2", "null"},
		{"query", "null/node/edge-2", "null"},
		{"insert", "default/event/e", event("Pod", "default", "web-2")},
		{"insert", "default/event/e", `{"involvedObject":{"kind":"Node","name":"edge-1"},"InvolvedObject":{"kind":"Node","name":"edge-2"}}`},
		{"insert", "default/event/e", `{"involvedObject":{"kind":"Node","name":"edge-1","NAME":"edge-2"}}`},
		{"keepalive", "null/node", `"ping"`},
		{"update", "default/devicestatus/d", "{}"},
		{"update", "default/devicestatus/thermo", devStatus("default", "thermo", "uid-thermo")},
		{"update", "default/devicestatus/pump", devStatus("default", "pump", "uid-pump")},
		{"update", "default/devicestatus/thermo", devStatus("default", "thermo", "uid-pump")},
		{"query", "default/device/pump", "null"},
		{"publish", "null/mqttupload", `{"topic":"$hw/events/upload/a","payload":"aGk="}`},
	} {
		f.Add(s.op, s.res, []byte(s.content))
	}
	scope := testScope()
	f.Fuzz(func(t *testing.T, op, res string, content []byte) {
		a := New(scope, nil)
		m := msg(wire.Operation(op), res, "")
		m.Content = content
		d := a.Authorize("edge-1", m)
		if !d.Allowed {
			if d.Reason == "" || d.Class == "" {
				t.Fatalf("refusal without reason or class: %+v", d)
			}
			return
		}
		key, err := wire.ParseResource(res)
		if err != nil {
			t.Fatalf("allowed an unparsable resource %q", res)
		}
		if !belongsToEdge1(scope, wire.Operation(op), key, content) {
			t.Fatalf("edge-1 was allowed %s %q with content %q, which is not its own", op, res, content)
		}
	})
}

// belongsToEdge1 is the property, written from the spec rather than from the code.
func belongsToEdge1(s fakeScope, op wire.Operation, key wire.Key, content []byte) bool {
	switch key.Type {
	case wire.TypeNode, wire.TypeNodeStatus, wire.TypeNodePatch:
		return key.Name == "edge-1" || (op == wire.OpQuery && s.Allows("edge-1", key))
	case wire.TypeLease:
		return key.Namespace == LeaseNamespace && key.Name == "edge-1"
	case wire.TypePodStatus, wire.TypePodPatch:
		n, ok := s.PodNode(key.Namespace, key.Name)
		return ok && n == "edge-1"
	case wire.TypePod:
		if op == wire.OpQuery {
			return s.Allows("edge-1", key)
		}
		n, ok := s.PodNode(key.Namespace, key.Name)
		return ok && n == "edge-1"
	case wire.TypeConfigMap, wire.TypeSecret, wire.TypeServiceAccountToken, wire.TypeDevice, wire.TypeDeviceModel:
		return op == wire.OpQuery && s.Allows("edge-1", key)
	case wire.TypeDeviceStatus:
		// The resource names the object written; the content must name edge-1's Device of
		// today. Its consumer (package upstream) reads it case-sensitively, as the API
		// server does, so that is how it is re-read here.
		n, uid, ok := s.Device(key.Namespace, key.Name)
		var st struct {
			Metadata struct {
				Namespace       string `json:"namespace"`
				Name            string `json:"name"`
				OwnerReferences []struct {
					UID string `json:"uid"`
				} `json:"ownerReferences"`
			} `json:"metadata"`
		}
		if !ok || n != "edge-1" || kjson.UnmarshalCaseSensitivePreserveInts(content, &st) != nil {
			return false
		}
		md := st.Metadata
		return md.Namespace == key.Namespace && md.Name == key.Name && len(md.OwnerReferences) == 1 && md.OwnerReferences[0].UID == uid
	case wire.TypeMQTTUpload:
		return key.Namespace == "" && key.Name == "" && s.Allows("edge-1", wire.Key{Type: wire.TypeNode, Name: "edge-1"})
	case wire.TypeEvent:
		var ev struct {
			InvolvedObject struct{ Kind, Namespace, Name string }
		}
		if json.Unmarshal(content, &ev) != nil {
			return false
		}
		o := ev.InvolvedObject
		switch o.Kind {
		case "Node":
			return o.Name == "edge-1"
		case "Pod":
			n, ok := s.PodNode(o.Namespace, o.Name)
			return ok && n == "edge-1" && o.Namespace == key.Namespace
		}
	}
	return false
}
