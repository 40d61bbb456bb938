package devicetwin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/pkg/wire"
)

const (
	ts     = "1795312800000"
	dev    = "$hw/events/device/default/thermo-1/"
	noVers = `"expected_version":{"cloud":0,"edge":0},"actual_version":{"cloud":0,"edge":0}`
)

// bare is the entry of a property nobody set.
func bare(typ string) string {
	return `{"optional":false,"metadata":{"type":"` + typ + `"},` + noVers + `}`
}

// seededTemperature is temperature's entry after the cloud's desired "20".
const seededTemperature = `{"expected":{"value":"20","metadata":{"timestamp":` + ts + `}},"optional":false,"metadata":{"type":"float"},
	"expected_version":{"cloud":1,"edge":0},"actual_version":{"cloud":0,"edge":0}}`

func seededTwin() string {
	return `{"temperature":` + seededTemperature + `,"count":` + bare("int") + `,"enabled":` + bare("boolean") +
		`,"blob":` + bare("bytes") + `,"video":` + bare("stream") + `,"label":` + bare("string") + `,"ro":` + bare("int") + `}`
}

func TestTwinGetAndMembershipGet(t *testing.T) {
	h := newHarness(t, "", true, nil)
	out := h.request(dev+"twin/get", `{"event_id":"e1","timestamp":1}`)
	if len(out) != 1 || out[0].Topic != dev+"twin/get/result" {
		t.Fatalf("published %v", topics(out))
	}
	checkJSON(t, "twin/get/result", out[0].Payload, `{"event_id":"e1","timestamp":`+ts+`,"twin":`+seededTwin()+`}`)

	out = h.request("$hw/events/node/edge-1/membership/get", `{"event_id":"e2"}`)
	if len(out) != 1 || out[0].Topic != "$hw/events/node/edge-1/membership/get/result" {
		t.Fatalf("published %v", topics(out))
	}
	checkJSON(t, "membership/get/result", out[0].Payload, `{"event_id":"e2","timestamp":`+ts+`,"devices":[
		{"id":"default/thermo-1","name":"thermo-1","state":"unknown","twin":`+seededTwin()+`}]}`)

	// Another node's membership topic is not ours.
	if out := h.request("$hw/events/node/edge-2/membership/get", `{}`); len(out) != 0 {
		t.Errorf("answered another node's membership/get: %v", topics(out))
	}
	// An empty payload is a valid get.
	if out := h.request(dev+"twin/get", ``); len(out) != 1 || !strings.Contains(string(out[0].Payload), `"twin"`) {
		t.Errorf("empty twin/get answered %v", out)
	}
}

func TestTwinUpdateExpected(t *testing.T) {
	h := newHarness(t, "", true, nil)
	out := h.request(dev+"twin/update", `{"event_id":"u1","timestamp":5,"twin":{"temperature":{"expected":{"value":"22.5"}}}}`)
	if got, want := strings.Join(topics(out), " "), dev+"twin/update/result "+dev+"twin/update/delta "+dev+"twin/update/document"; got != want {
		t.Fatalf("published %s\nwant %s", got, want)
	}
	cur := `{"expected":{"value":"22.5","metadata":{"timestamp":` + ts + `}},"optional":false,"metadata":{"type":"float"},
		"expected_version":{"cloud":1,"edge":1},"actual_version":{"cloud":0,"edge":0}}`
	checkJSON(t, "result", out[0].Payload, `{"event_id":"u1","timestamp":`+ts+`,"twin":{"temperature":`+cur+`}}`)
	full := strings.Replace(seededTwin(), seededTemperature, cur, 1)
	checkJSON(t, "delta", out[1].Payload, `{"event_id":"GEN","timestamp":`+ts+`,"twin":`+full+`,"delta":{"temperature":"22.5"}}`)
	checkJSON(t, "document", out[2].Payload, `{"event_id":"GEN","timestamp":`+ts+`,"twin":{"temperature":{"last":`+seededTemperature+`,"current":`+cur+`}}}`)

	if got := h.twin.Expected("default", "thermo-1")["temperature"].Value; got != "22.5" {
		t.Errorf("Expected = %q, want 22.5", got)
	}
	if got := h.expectedCalls(); len(got) != 2 || got[1] != "default/thermo-1" { // the cloud's at start, then ours
		t.Errorf("OnExpectedChange calls = %v", got)
	}
	if h.twin.Expected("default", "nope") != nil {
		t.Error("Expected of an unknown device is not nil")
	}
}

func TestTwinUpdateActualTypedDelta(t *testing.T) {
	h := newHarness(t, "", true, nil)
	for _, c := range []struct {
		prop, expected, actual string
		delta                  bool
	}{
		{"temperature", "1", "1.0", false},
		{"temperature", "1", "1.5", true},
		{"count", "1", "1.0", false}, // 1.0 is an integral INT
		{"count", "2", "1", true},
		{"enabled", "true", "TRUE", false},
		{"blob", "aGk=", "aGk=", false},
		{"label", "a", "A", true},
	} {
		out := h.request(dev+"twin/update", fmt.Sprintf(`{"event_id":"x","twin":{%q:{"expected":{"value":%q},"actual":{"value":%q}}}}`, c.prop, c.expected, c.actual))
		if len(out) == 0 || strings.Contains(string(out[0].Payload), `"code"`) {
			t.Fatalf("%+v: refused: %s", c, out[0].Payload)
		}
		var d struct{ Delta map[string]string }
		hasDelta := false
		for _, m := range out {
			if m.Topic == dev+"twin/update/delta" {
				_ = json.Unmarshal(m.Payload, &d)
				_, hasDelta = d.Delta[c.prop]
			}
		}
		if hasDelta != c.delta {
			t.Errorf("%+v: delta for the property = %v", c, hasDelta)
		}
	}
}

func TestTwinUpdateGarbage(t *testing.T) {
	h := newHarness(t, "", true, nil)
	big := `{"event_id":"b","twin":{"label":{"expected":{"value":"` + strings.Repeat("x", MaxPayload) + `"}}}}`
	for _, c := range []struct {
		name, topic, payload string
		code                 int
	}{
		{"not json", dev + "twin/update", `not json`, 400},
		{"array", dev + "twin/update", `[1]`, 400},
		{"trailing", dev + "twin/update", `{"twin":{"label":{"expected":{"value":"a"}}}} {}`, 400},
		{"wrong type", dev + "twin/update", `{"event_id":"w","twin":{"label":{"expected":{"value":5}}}}`, 400},
		{"no twin", dev + "twin/update", `{"event_id":"w"}`, 400},
		{"null entry", dev + "twin/update", `{"twin":{"label":null}}`, 400},
		{"no value", dev + "twin/update", `{"twin":{"label":{"expected":{}}}}`, 400},
		{"too large", dev + "twin/update", big, 413},
		{"unknown device", "$hw/events/device/default/nope/twin/update", `{"twin":{"label":{"expected":{"value":"a"}}}}`, 404},
		{"bad id", "$hw/events/device/Default/x_y/twin/update", `{"twin":{"label":{"expected":{"value":"a"}}}}`, 400},
		{"unknown property", dev + "twin/update", `{"twin":{"nope":{"expected":{"value":"a"}}}}`, 400},
		{"bad int", dev + "twin/update", `{"twin":{"count":{"expected":{"value":"1.5"}}}}`, 400},
		{"bad float", dev + "twin/update", `{"twin":{"temperature":{"expected":{"value":"warm"}}}}`, 400},
		{"nan", dev + "twin/update", `{"twin":{"temperature":{"expected":{"value":"NaN"}}}}`, 400},
		{"above max", dev + "twin/update", `{"twin":{"temperature":{"expected":{"value":"126"}}}}`, 400},
		{"below min", dev + "twin/update", `{"twin":{"temperature":{"expected":{"value":"-41"}}}}`, 400},
		{"bad bool", dev + "twin/update", `{"twin":{"enabled":{"expected":{"value":"yes"}}}}`, 400},
		{"bad bytes", dev + "twin/update", `{"twin":{"blob":{"expected":{"value":"!!"}}}}`, 400},
		{"stream", dev + "twin/update", `{"twin":{"video":{"actual":{"value":"x"}}}}`, 400},
		{"read-only", dev + "twin/update", `{"twin":{"ro":{"expected":{"value":"1"}}}}`, 400},
		// One bad entry refuses the whole update: label must stay unset.
		{"partly bad", dev + "twin/update", `{"twin":{"label":{"expected":{"value":"a"}},"count":{"expected":{"value":"x"}}}}`, 400},
		{"get not json", dev + "twin/get", `{`, 400},
		{"get unknown", "$hw/events/device/default/nope/twin/get", `{}`, 404},
		{"state bad", dev + "state/update", `{"state":"sleepy"}`, 400},
		{"state wrong type", dev + "state/update", `{"state":1}`, 400},
		{"state unknown device", "$hw/events/device/default/nope/state/update", `{"state":"online"}`, 404},
		{"membership garbage", "$hw/events/node/edge-1/membership/get", `"x"`, 400},
	} {
		out := h.request(c.topic, c.payload)
		if len(out) != 1 || out[0].Topic != c.topic+"/result" {
			t.Errorf("%s: published %v, want only the result", c.name, topics(out))
			continue
		}
		var res struct {
			EventID string `json:"event_id"`
			Code    int    `json:"code"`
			Reason  string `json:"reason"`
		}
		if err := json.Unmarshal(out[0].Payload, &res); err != nil || res.Code != c.code || res.Reason == "" || res.EventID == "" {
			t.Errorf("%s: result %s, want code %d with a reason", c.name, out[0].Payload, c.code)
		}
	}
	if got := h.request(dev+"twin/get", `{"event_id":"g"}`); canonical(t, got[0].Payload) != canonical(t, []byte(`{"event_id":"g","timestamp":`+ts+`,"twin":`+seededTwin()+`}`)) {
		t.Errorf("garbage changed the twin: %s", got[0].Payload)
	}
	if len(h.outbox.all()) != 0 {
		t.Errorf("garbage sent status upstream")
	}
}

func TestCloudDesiredCrossesEdgeExpected(t *testing.T) {
	h := newHarness(t, "", true, nil)
	h.request(dev+"twin/update", `{"twin":{"temperature":{"expected":{"value":"30"}}}}`)

	// A resend of the unchanged Device (other fields changed) keeps the edge's value.
	apply(t, h.db, wire.OpUpdate, "default/device/thermo-1", strings.Replace(deviceJSON("thermo-1", "uid-1", "20"), `"reportCycle":50}`, `"reportCycle":60}`, 1))
	waitFor(t, "resend applied", func() bool {
		h.twin.mu.Lock()
		defer h.twin.mu.Unlock()
		return h.twin.devices[wire.Key{Namespace: "default", Type: wire.TypeDevice, Name: "thermo-1"}].spec.Spec.Properties[0].ReportCycle == 60
	})
	if got := h.twin.Expected("default", "thermo-1")["temperature"].Value; got != "30" {
		t.Fatalf("after an unchanged resend Expected = %q, want the edge's 30", got)
	}

	// A new cloud desired value replaces it and bumps the cloud version.
	h.bus.take()
	apply(t, h.db, wire.OpUpdate, "default/device/thermo-1", deviceJSON("thermo-1", "uid-1", "25"))
	waitFor(t, "cloud desired", func() bool { return h.twin.Expected("default", "thermo-1")["temperature"].Value == "25" })
	out := h.request(dev+"twin/get", `{}`)
	var res twinMessage
	if err := json.Unmarshal(out[0].Payload, &res); err != nil {
		t.Fatal(err)
	}
	if v := res.Twin["temperature"].ExpectedVersion; *v != (msgVersion{Cloud: 2, Edge: 1}) {
		t.Errorf("expected_version = %+v, want cloud 2 edge 1", *v)
	}
	waitFor(t, "OnExpectedChange for start, edge and cloud", func() bool { return len(h.expectedCalls()) == 3 })
}

func TestCloudDesiredPublishesDeltaAndDocument(t *testing.T) {
	h := newHarness(t, "", true, nil)
	h.bus.take()
	apply(t, h.db, wire.OpUpdate, "default/device/thermo-1", deviceJSON("thermo-1", "uid-1", "25"))
	got := []Message{h.waitPublished(dev + "twin/update/delta"), h.waitPublished(dev + "twin/update/document")}
	if got[0].Topic != dev+"twin/update/delta" || got[1].Topic != dev+"twin/update/document" {
		t.Fatalf("published %v", topics(got))
	}
	if !strings.Contains(string(got[0].Payload), `"delta":{"temperature":"25"}`) {
		t.Errorf("delta = %s", got[0].Payload)
	}
}

func TestStateUpdate(t *testing.T) {
	h := newHarness(t, "", true, nil)
	out := h.request(dev+"state/update", `{"event_id":"s1","timestamp":3,"state":"online"}`)
	if len(out) != 2 || out[0].Topic != dev+"state/update/result" || out[1].Topic != dev+"updated" {
		t.Fatalf("published %v", topics(out))
	}
	checkJSON(t, "state result", out[0].Payload, `{"event_id":"s1","timestamp":`+ts+`,"device":{"name":"thermo-1","state":"online","last_online":"2026-11-22T02:00:00Z"}}`)
	checkJSON(t, "updated", out[1].Payload, `{"event_id":"GEN","timestamp":`+ts+`,"state":"online"}`)

	waitFor(t, "status upstream", func() bool { return len(h.outbox.all()) == 1 })
	m := h.outbox.all()[0]
	if m.Route.Resource != "default/devicestatus/thermo-1" || m.Route.Operation != wire.OpUpdate || m.Route.Source != Source {
		t.Errorf("route = %+v", m.Route)
	}
	checkJSON(t, "DeviceStatus", m.Content, `{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceStatus",
		"metadata":{"namespace":"default","name":"thermo-1",
		 "ownerReferences":[{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","name":"thermo-1","uid":"uid-1","controller":true}]},
		"spec":{},"status":{"state":"online","lastOnlineTime":"2026-11-22T02:00:00Z"}}`)

	// The same non-online state again changes nothing.
	h.request(dev+"state/update", `{"state":"offline"}`)
	out = h.request(dev+"state/update", `{"state":"offline"}`)
	if len(out) != 1 {
		t.Errorf("repeated state published %v", topics(out))
	}
}

func TestReportTwinsAndUpstream(t *testing.T) {
	h := newHarness(t, "", false, nil)
	ctx := context.Background()
	// A window (half of reportCycle 4 s) no loaded machine outlasts with five reports.
	apply(t, h.db, wire.OpInsert, "default/devicemodel/thermo-model", modelJSON)
	apply(t, h.db, wire.OpInsert, "default/device/thermo-1", strings.ReplaceAll(deviceJSON("thermo-1", "uid-1", "20"), `"reportCycle":50`, `"reportCycle":4000`))
	waitFor(t, "the device in the twin", func() bool { return h.twin.Expected("default", "thermo-1") != nil })
	// Several reports within the window: the newest must go up; not one enqueue each.
	for i := range 5 {
		err := h.twin.ReportTwins(ctx, "default", "thermo-1", []Report{
			{Property: "temperature", Reported: &Value{Value: fmt.Sprint(21 + i), Metadata: map[string]string{"timestamp": "7"}}, ObservedDesired: &Value{Value: "20"}},
			{Property: "label", Reported: &Value{Value: "not reported to the cloud"}},
		})
		if err != nil {
			t.Fatalf("ReportTwins: %v", err)
		}
	}
	var last *devicesv1beta1.DeviceStatus
	waitFor(t, "newest status upstream", func() bool {
		msgs := h.outbox.all()
		if len(msgs) == 0 {
			return false
		}
		last = &devicesv1beta1.DeviceStatus{}
		_ = json.Unmarshal(msgs[len(msgs)-1].Content, last)
		return len(last.Status.Twins) == 1 && last.Status.Twins[0].Reported.Value == "25"
	})
	if n := len(h.outbox.all()); n > 3 {
		t.Errorf("%d enqueues for 5 reports within the window", n)
	}
	tw := last.Status.Twins[0]
	if tw.PropertyName != "temperature" || tw.Reported.Metadata["timestamp"] != "7" || tw.Reported.Metadata["type"] != "float" ||
		tw.ObservedDesired == nil || tw.ObservedDesired.Value != "20" || tw.ObservedDesired.Metadata["timestamp"] != ts {
		t.Errorf("twin = %+v", tw)
	}

	// The dirty mark is cleared once the newest is queued.
	waitFor(t, "clean", func() bool {
		twins, err := h.db.Twins(ctx)
		return err == nil && len(twins) == 1 && twins[0].Dirty == 0
	})

	for _, c := range []struct {
		name    string
		ns, dev string
		r       Report
		want    error
	}{
		{"unknown device", "default", "nope", Report{Property: "count", Reported: &Value{Value: "1"}}, ErrNotFound},
		{"bad name", "default", "Bad_Name", Report{Property: "count", Reported: &Value{Value: "1"}}, ErrInvalid},
		{"unknown property", "default", "thermo-1", Report{Property: "nope", Reported: &Value{Value: "1"}}, ErrNotFound},
		{"bad int", "default", "thermo-1", Report{Property: "count", Reported: &Value{Value: "x"}}, ErrInvalid},
		{"stream", "default", "thermo-1", Report{Property: "video", Reported: &Value{Value: "x"}}, ErrInvalid},
		{"metadata", "default", "thermo-1", Report{Property: "count", Reported: &Value{Value: "1", Metadata: map[string]string{"k": strings.Repeat("v", 300)}}}, ErrInvalid},
	} {
		if err := h.twin.ReportTwins(ctx, c.ns, c.dev, []Report{c.r}); !errors.Is(err, c.want) {
			t.Errorf("%s: ReportTwins = %v, want %v", c.name, err, c.want)
		}
	}
	if err := h.twin.ReportState(ctx, "default", "thermo-1", "sleepy"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ReportState(sleepy) = %v", err)
	}
	if err := h.twin.ReportState(ctx, "default", "nope", "ok"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReportState(unknown) = %v", err)
	}
}

func TestPersistenceAndRestartFlush(t *testing.T) {
	out := &fakeOutbox{fail: true} // the status cannot leave before the restart
	h := newHarness(t, "", true, out)
	ctx := context.Background()
	h.request(dev+"twin/update", `{"twin":{"label":{"expected":{"value":"hello"}},"count":{"actual":{"value":"7"}}}}`)
	if err := h.twin.ReportState(ctx, "default", "thermo-1", "online"); err != nil {
		t.Fatal(err)
	}
	before := h.request(dev+"twin/get", `{"event_id":"g"}`)[0].Payload
	h.stop()

	out2 := &fakeOutbox{}
	h2 := newHarness(t, h.dir, false, out2)
	after := h2.request(dev+"twin/get", `{"event_id":"g"}`)[0].Payload
	if canonical(t, before) != canonical(t, after) {
		t.Errorf("twin changed across restart:\nbefore %s\nafter  %s", before, after)
	}
	waitFor(t, "status flushed after restart", func() bool { return len(out2.all()) == 1 })
	var ds devicesv1beta1.DeviceStatus
	if err := json.Unmarshal(out2.all()[0].Content, &ds); err != nil {
		t.Fatal(err)
	}
	if ds.Status.State != "online" || len(ds.Status.Twins) != 1 || ds.Status.Twins[0].PropertyName != "count" || ds.Status.Twins[0].Reported.Value != "7" {
		t.Errorf("status after restart = %+v", ds.Status)
	}
	// A restart restores no membership news: the device did not come or go.
	for _, m := range h2.bus.published {
		if strings.Contains(m.Topic, "membership/updated") {
			t.Errorf("restart published %s", m.Topic)
		}
	}
}

func TestDeviceAddedRemovedRecreated(t *testing.T) {
	h := newHarness(t, "", true, nil)
	ctx := context.Background()
	h.bus.take()
	apply(t, h.db, wire.OpInsert, "default/device/thermo-2", deviceJSON("thermo-2", "uid-2", "20"))
	added := h.waitPublished("$hw/events/node/edge-1/membership/updated")
	checkJSON(t, "added", added.Payload, `{"event_id":"GEN","timestamp":`+ts+`,"added_devices":[
		{"id":"default/thermo-2","name":"thermo-2","state":"unknown","twin":`+strings.ReplaceAll(seededTwin(), "thermo-1", "thermo-2")+`}],"removed_devices":[]}`)

	if err := h.twin.ReportTwins(ctx, "default", "thermo-2", []Report{{Property: "count", Reported: &Value{Value: "3"}}}); err != nil {
		t.Fatal(err)
	}
	// Re-created under the same name: a new twin.
	apply(t, h.db, wire.OpUpdate, "default/device/thermo-2", deviceJSON("thermo-2", "uid-3", "20"))
	if m := h.waitPublished("$hw/events/node/edge-1/membership/updated"); !strings.Contains(string(m.Payload), `"removed_devices":[{"id":"default/thermo-2"`) {
		t.Errorf("re-creation first announces %s", m.Payload)
	}
	if m := h.waitPublished("$hw/events/node/edge-1/membership/updated"); !strings.Contains(string(m.Payload), `"added_devices":[{"id":"default/thermo-2"`) {
		t.Errorf("re-creation then announces %s", m.Payload)
	}
	if got := h.request("$hw/events/device/default/thermo-2/twin/get", `{}`); strings.Contains(string(got[0].Payload), `"actual"`) {
		t.Errorf("re-created device kept the old actual: %s", got[0].Payload)
	}

	h.bus.take()
	apply(t, h.db, wire.OpDelete, "default/device/thermo-2", `{"metadata":{"name":"thermo-2","namespace":"default","uid":"uid-3"}}`)
	removed := h.waitPublished("$hw/events/node/edge-1/membership/updated")
	checkJSON(t, "removed", removed.Payload, `{"event_id":"GEN","timestamp":`+ts+`,"added_devices":[],"removed_devices":[{"id":"default/thermo-2","name":"thermo-2"}]}`)
	twins, err := h.db.Twins(ctx)
	if err != nil || len(twins) != 1 {
		t.Errorf("stored twins after delete = %d, %v; want thermo-1 only", len(twins), err)
	}
}

func TestReconcileDropsTwinsOfDevicesDeletedWhileStopped(t *testing.T) {
	h := newHarness(t, "", true, nil)
	h.stop()
	db := openStore(t, h.dir)
	apply(t, db, wire.OpDelete, "default/device/thermo-1", `{"metadata":{"uid":"uid-1"}}`)
	_ = db.Close()
	h2 := newHarness(t, h.dir, false, nil)
	twins, err := h2.db.Twins(context.Background())
	if err != nil || len(twins) != 0 {
		t.Fatalf("twins after reconcile = %+v, %v", twins, err)
	}
}

func TestNewRequiresConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New(Config{}) succeeded")
	}
}

func TestEnqueueRetriedAfterFailure(t *testing.T) {
	out := &fakeOutbox{fail: true}
	h := newHarness(t, "", true, out)
	if err := h.twin.ReportTwins(context.Background(), "default", "thermo-1", []Report{{Property: "count", Reported: &Value{Value: "9"}}}); err != nil {
		t.Fatal(err)
	}
	out.setFail(false)
	waitFor(t, "status after the outbox recovered", func() bool { return len(out.all()) == 1 })
	if !strings.Contains(string(out.all()[0].Content), `"value":"9"`) {
		t.Errorf("status = %s", out.all()[0].Content)
	}
}

// TestLoadedAfterFirstResync: Loaded closes only once the twin knows the store's devices, so
// Expected has the edge-set values from then on.
func TestLoadedAfterFirstResync(t *testing.T) {
	h := newHarness(t, "", true, nil)
	select {
	case <-h.twin.Loaded():
	case <-time.After(10 * time.Second):
		t.Fatal("Loaded never closed")
	}
	if h.twin.Expected("default", "thermo-1") == nil {
		t.Error("loaded, but the device is unknown")
	}
}
