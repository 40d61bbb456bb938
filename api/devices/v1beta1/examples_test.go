package v1beta1_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	serializerjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
)

// The examples under testdata are plain, kubectl-appliable objects; the e2e tests apply them to a
// real API server with the CRDs from manifests/crds.
var examples = []struct {
	file string
	kind string
}{
	{"devicemodel-modbus.yaml", "DeviceModel"},
	{"device-modbus.yaml", "Device"},
	{"devicestatus.yaml", "DeviceStatus"},
}

// strictCodec decodes YAML or JSON the way the API machinery's strict field validation does:
// field names are case-sensitive, and unknown or duplicate fields are errors.
func strictCodec(t *testing.T) *serializerjson.Serializer {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := devicesv1beta1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return serializerjson.NewSerializerWithOptions(serializerjson.DefaultMetaFactory, scheme, scheme,
		serializerjson.SerializerOptions{Yaml: true, Strict: true})
}

func decodeStrict(t *testing.T, codec *serializerjson.Serializer, data []byte) runtime.Object {
	t.Helper()
	obj, _, err := codec.Decode(data, nil, nil)
	if err != nil {
		t.Fatalf("strict decode: %v", err)
	}
	return obj
}

func readExample(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestExamplesDecodeStrictly(t *testing.T) {
	codec := strictCodec(t)
	for _, ex := range examples {
		t.Run(ex.file, func(t *testing.T) {
			obj := decodeStrict(t, codec, readExample(t, ex.file))
			if got := obj.GetObjectKind().GroupVersionKind(); got != devicesv1beta1.SchemeGroupVersion.WithKind(ex.kind) {
				t.Fatalf("decoded %v, want kind %s", got, ex.kind)
			}
		})
	}
}

// TestDeviceExampleFields spot-checks fields whose JSON names are easy to get wrong.
func TestDeviceExampleFields(t *testing.T) {
	obj := decodeStrict(t, strictCodec(t), readExample(t, "device-modbus.yaml"))
	d := obj.(*devicesv1beta1.Device)
	if d.Spec.DeviceModelRef == nil || d.Spec.DeviceModelRef.Name != "thermostat-model" {
		t.Errorf("deviceModelRef = %+v", d.Spec.DeviceModelRef)
	}
	if d.Spec.NodeName != "edge-1" || d.Spec.Protocol.ProtocolName != "modbus" {
		t.Errorf("nodeName/protocolName = %q/%q", d.Spec.NodeName, d.Spec.Protocol.ProtocolName)
	}
	var conn struct {
		IP   string `json:"ip"`
		Port int    `json:"port"`
	}
	if err := d.Spec.Protocol.ConfigData.Decode(&conn); err != nil || conn.IP != "192.168.10.21" || conn.Port != 502 {
		t.Errorf("protocol configData = %+v, %v", conn, err)
	}
	temp, set := d.Spec.Properties[0], d.Spec.Properties[1]
	if temp.CollectCycle != 2000 || temp.ReportCycle != 10000 || !temp.ReportToCloud || temp.Desired != nil {
		t.Errorf("temperature property = %+v", temp)
	}
	if m := temp.PushMethod.MQTT; m.QoS != 1 || !m.Retained || m.Topic == "" {
		t.Errorf("mqtt = %+v", m)
	}
	influx := temp.PushMethod.DBMethod.Influxdb2
	if influx.Influxdb2ClientConfig.Bucket != "telemetry" || influx.Influxdb2DataConfig.Tag["room"] != "lab-2" {
		t.Errorf("influxdb2 = %+v %+v", influx.Influxdb2ClientConfig, influx.Influxdb2DataConfig)
	}
	if set.Desired == nil || set.Desired.Value != "21.5" || set.Desired.Metadata["type"] != "float" {
		t.Errorf("setpoint desired = %+v", set.Desired)
	}
	pm := set.PushMethod
	if pm.HTTP.HostName != "http://127.0.0.1" || pm.HTTP.RequestPath != "/api/v1/setpoint" || pm.HTTP.Timeout != 3000 {
		t.Errorf("http = %+v", pm.HTTP)
	}
	if pm.OTEL.EndpointURL == "" {
		t.Errorf("otel = %+v", pm.OTEL)
	}
	if r := pm.DBMethod.Redis.RedisClientConfig; r.Poolsize != 10 || r.MinIdleConns != 2 || r.DB != 2 {
		t.Errorf("redis = %+v", r)
	}
	if td := pm.DBMethod.TDEngine.TDEngineClientConfig; td.DBName != "telemetry" {
		t.Errorf("TDEngine = %+v", td)
	}
	if my := pm.DBMethod.MySQL.MySQLClientConfig; my.UserName != "mapper" || my.Database != "telemetry" {
		t.Errorf("mysql = %+v", my)
	}
	if fields, err := pm.AnomalyDetection.Fields(); err != nil || string(fields["algorithm"]) != `"zscore"` {
		t.Errorf("anomalyDetection = %v, %v", fields, err)
	}
	if got := d.Spec.Methods[0].PropertyNames; !reflect.DeepEqual(got, []string{"setpoint", "heating"}) {
		t.Errorf("method propertyNames = %v", got)
	}
	if sr := d.Spec.StateReport; sr == nil || !sr.ReportToCloud || sr.ReportCycle != 30000 {
		t.Errorf("stateReport = %+v", sr)
	}
}

func TestDeviceStatusExampleFields(t *testing.T) {
	obj := decodeStrict(t, strictCodec(t), readExample(t, "devicestatus.yaml"))
	s := obj.(*devicesv1beta1.DeviceStatus).Status
	if s.State != devicesv1beta1.DeviceStateOnline || s.LastOnlineTime == "" || len(s.Twins) != 2 {
		t.Fatalf("status = %+v", s)
	}
	tw := s.Twins[1]
	if tw.PropertyName != "setpoint" || tw.Reported.Value != "21.5" || tw.ObservedDesired.Metadata["type"] != "float" {
		t.Errorf("twin = %+v", tw)
	}
	if s.Twins[0].ObservedDesired != nil {
		t.Errorf("twin without observedDesired decoded as %+v", s.Twins[0].ObservedDesired)
	}
}

// TestExamplesRoundTrip checks decode → encode → decode gives the same object, and that encoding
// loses nothing of the document (a field the types drop would show up here).
func TestExamplesRoundTrip(t *testing.T) {
	codec := strictCodec(t)
	for _, ex := range examples {
		t.Run(ex.file, func(t *testing.T) {
			data := readExample(t, ex.file)
			first := decodeStrict(t, codec, data)
			encoded, err := json.Marshal(first)
			if err != nil {
				t.Fatal(err)
			}
			second := decodeStrict(t, codec, encoded)
			if !reflect.DeepEqual(first, second) {
				t.Errorf("decode→encode→decode changed the object:\nfirst:  %#v\nsecond: %#v", first, second)
			}

			want, got := genericYAML(t, data), genericYAML(t, encoded)
			if !reflect.DeepEqual(want, got) {
				w, _ := json.MarshalIndent(want, "", "  ")
				g, _ := json.MarshalIndent(got, "", "  ")
				t.Errorf("encoding changed the document:\nwant %s\ngot  %s", w, g)
			}
		})
	}
}

// TestExamplesUnstructuredRoundTrip covers the path dynamic clients and controllers take:
// typed → map[string]any → typed.
func TestExamplesUnstructuredRoundTrip(t *testing.T) {
	codec := strictCodec(t)
	for _, ex := range examples {
		t.Run(ex.file, func(t *testing.T) {
			obj := decodeStrict(t, codec, readExample(t, ex.file))
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(obj).Elem()).Interface()
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u, back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(obj, back) {
				t.Errorf("typed → unstructured → typed changed the object:\nbefore: %#v\nafter:  %#v", obj, back)
			}
		})
	}
}

// genericYAML decodes YAML or JSON into plain maps and slices, without the empty values and
// nulls that encoding adds for absent fields (status: {}, creationTimestamp: null).
func genericYAML(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return dropEmpty(v)
}

func dropEmpty(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			e = dropEmpty(e)
			if e == nil {
				continue
			}
			if m, ok := e.(map[string]any); ok && len(m) == 0 {
				continue
			}
			out[k] = e
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = dropEmpty(e)
		}
		return out
	default:
		return v
	}
}

// TestStrictDecodingCatchesMisspelledFields makes sure the strict decoder used above really
// rejects fields the types do not know, including ones that differ only in case (encoding/json
// alone would accept "tdengine" for "TDEngine").
func TestStrictDecodingCatchesMisspelledFields(t *testing.T) {
	codec := strictCodec(t)
	for _, field := range []string{"tdengine", "TDEngineClientConfig", "hostname"} {
		doc := `{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","metadata":{"name":"d"},` +
			`"spec":{"properties":[{"name":"p","pushMethod":{"dbMethod":{"` + field + `":{}}}}]}}`
		_, _, err := codec.Decode([]byte(doc), nil, nil)
		if err == nil || !runtime.IsStrictDecodingError(err) || !strings.Contains(err.Error(), field) {
			t.Errorf("field %q: got %v, want a strict decoding error naming it", field, err)
		}
	}
}

// TestKubeEdgeShapedObjectsDecode covers inputs KubeEdge accepts that the examples above do not:
// configData in the DMI shape ({data: {...}}), a legacy Device status with extra fields, device
// states beyond the documented ones.
func TestKubeEdgeShapedObjectsDecode(t *testing.T) {
	codec := strictCodec(t)
	docs := []string{
		`{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","metadata":{"name":"d"},
		  "spec":{"protocol":{"protocolName":"modbus","configData":{"data":{"ip":"10.0.0.1","port":502}}}}}`,
		`{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","metadata":{"name":"d"},
		  "status":{"reportToCloud":true,"reportCycle":1000}}`,
		`{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceStatus","metadata":{"name":"d"},
		  "spec":{},"status":{"state":"disconnected"}}`,
		`{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"DeviceStatus","metadata":{"name":"d"},
		  "status":{"state":"rebooting"}}`,
	}
	for _, doc := range docs {
		if _, _, err := codec.Decode([]byte(doc), nil, nil); err != nil {
			t.Errorf("decode %s: %v", doc, err)
		}
	}
}

func TestFreeFormRejectsNonObjects(t *testing.T) {
	codec := strictCodec(t)
	for _, v := range []string{`"tcp"`, `[1,2]`, `42`, `true`} {
		doc := `{"apiVersion":"devices.kubeedge.io/v1beta1","kind":"Device","metadata":{"name":"d"},` +
			`"spec":{"protocol":{"configData":` + v + `}}}`
		if _, _, err := codec.Decode([]byte(doc), nil, nil); err == nil {
			t.Errorf("configData %s: decoded, want an error", v)
		}
	}
	var f devicesv1beta1.FreeForm
	if err := json.Unmarshal([]byte(`"x"`), &f); !errors.Is(err, devicesv1beta1.ErrNotObject) {
		t.Errorf("got %v, want ErrNotObject", err)
	}
}
