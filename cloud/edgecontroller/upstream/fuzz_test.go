package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/pkg/wire"
)

// FuzzHandle feeds arbitrary operations, resources and contents to Handle with the fake
// client: it must never panic (Handle's own recover would hide one, so the test checks for
// its "internal error" answer too), and malformed input must never look transient.
func FuzzHandle(f *testing.F) {
	seeds := []struct{ op, res, content string }{
		{"insert", "null/node/edge-1", `{"metadata":{"labels":{"a":"b"}},"status":{"conditions":[{"type":"Ready"}]}}`},
		{"update", "null/nodestatus/edge-1", `{"status":{"capacity":{"cpu":"2"},"images":[]}}`},
		{"update", "default/nodestatus/edge-1", `{"status":{"nodeInfo":{"osImage":"x"}}}`},
		{"patch", "null/nodepatch/edge-1", `{"metadata":{"labels":{"x":null}},"status":{}}`},
		{"update", "kube-node-lease/lease/edge-1", `{"spec":{"renewTime":"2026-01-01T00:00:00.000000Z"}}`},
		{"insert", "kube-node-lease/lease/edge-1", `{}`},
		{"update", "default/podstatus/web-1", `{"metadata":{"uid":"pod-uid"},"status":{"phase":"Running"}}`},
		{"patch", "default/podpatch/web-1", `{"metadata":{"uid":"pod-uid"},"status":{"phase":"Failed"}}`},
		{"delete", "default/pod/web-1", `{"metadata":{"uid":"pod-uid"}}`},
		{"insert", "default/event/e1", `{"involvedObject":{"kind":"Pod","namespace":"default","name":"web-1"},"count":2}`},
		{"query", "default/configmap/cfg-1", `null`},
		{"query", "null/node/edge-1", `null`},
		{"query", "kube-node-lease/lease/edge-1", `null`},
		{"update", "default/podstatus/web-1", `{"metadata":{"uid":"pod-uid"},"status":{"phase":1e400}}`},
		{"keepalive", "node", `"ping"`},
		{"insert", "null/node/edge-1", `{"metadata":{"name":"edge-1","Name":"edge-2"}}`},
		{"update", "default/devicestatus/thermo", deviceStatusJSON("default", "thermo", "uid-thermo", "1")},
		{"update", "default/devicestatus/pump", deviceStatusJSON("default", "pump", "uid-pump", "1")},
		{"publish", "null/mqttupload", upload("$hw/events/upload/x", []byte("hi"))},
		{"query", "default/device/thermo", `null`},
	}
	for _, s := range seeds {
		f.Add(s.op, s.res, []byte(s.content))
	}
	f.Fuzz(func(t *testing.T, op, res string, content []byte) {
		e := newEnv(t, edgeNode("edge-1", "node-uid"), testPod("default", "web-1", "pod-uid", "edge-1"))
		e.objs.objects["edge-1"] = map[wire.Key]json.RawMessage{
			{Namespace: "default", Type: wire.TypeConfigMap, Name: "cfg-1"}: json.RawMessage(`{}`),
		}
		m := wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: wire.Operation(op), Resource: res}, content)
		_, err := e.h.Handle(context.Background(), "edge-1", m)
		if err != nil && errors.Is(err, ErrMalformed) && errors.Is(err, hub.ErrTransient) {
			t.Fatalf("malformed input reported transient: %v", err)
		}
		if err != nil && strings.HasPrefix(err.Error(), "internal error") {
			t.Fatalf("handler panicked: %v", err)
		}
	})
}

// FuzzParseDeviceStatus: no DeviceStatus content panics the decoder, and what it accepts names
// the device of the resource, with a uid, and twins that are named and unique.
func FuzzParseDeviceStatus(f *testing.F) {
	f.Add([]byte(deviceStatusJSON("default", "thermo", "uid-thermo", "21.5")))
	f.Add([]byte(`{"metadata":{"namespace":"default","name":"thermo","ownerReferences":[{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","name":"thermo","uid":"u","controller":true}]},"status":{"twins":[{"propertyName":"a"},{"propertyName":"a"}]}}`))
	f.Add([]byte(`{"metadata":{"namespace":"default","name":"thermo","ownerReferences":[{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","name":"thermo","uid":"u","controller":true}]},"status":{"extensions":"x","state":"ok"}}`))
	f.Add([]byte(`{"metadata":{"name":"thermo","name":"pump"}}`))
	f.Add([]byte(`null`))
	key := wire.Key{Namespace: "default", Type: wire.TypeDeviceStatus, Name: "thermo"}
	f.Fuzz(func(t *testing.T, content []byte) {
		in, uid, err := parseDeviceStatus(key, content)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("refusal is not ErrMalformed: %v", err)
			}
			return
		}
		if uid == "" || len(in.Status.Twins) > maxTwins {
			t.Fatalf("accepted uid %q with %d twins", uid, len(in.Status.Twins))
		}
		seen := map[string]bool{}
		for _, tw := range in.Status.Twins {
			if tw.PropertyName == "" || seen[tw.PropertyName] {
				t.Fatalf("accepted twin %q twice or unnamed", tw.PropertyName)
			}
			seen[tw.PropertyName] = true
		}
	})
}

// FuzzParseUpload: no upload content panics the decoder, and what it accepts is on an upload
// topic and within the payload cap.
func FuzzParseUpload(f *testing.F) {
	f.Add([]byte(upload("$hw/events/upload/a", []byte("x"))))
	f.Add([]byte(upload("SYS/dis/upload_records", nil)))
	f.Add([]byte(`{"topic":"$hw/events/upload/+","payload":"!"}`))
	f.Add([]byte(`{"topic":"SYS/dis/upload_records","payload":null}`))
	f.Fuzz(func(t *testing.T, content []byte) {
		in, err := parseUpload(content)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("refusal is not ErrMalformed: %v", err)
			}
			return
		}
		if in.Topic != UploadRecordsTopic && !strings.HasPrefix(in.Topic, UploadTopicPrefix) || len(in.Payload) > MaxUploadPayload {
			t.Fatalf("accepted topic %q with %d bytes", in.Topic, len(in.Payload))
		}
	})
}
