package dmi

import (
	"os"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	pb "github.com/skerry-io/skerry/api/dmi/v1beta1"
	"github.com/skerry-io/skerry/edge/devicetwin"
	"github.com/skerry-io/skerry/mapper/dmiconv"
)

const testdata = "../../api/devices/v1beta1/testdata/"

func loadYAML(t *testing.T, file string, into any) {
	t.Helper()
	b, err := os.ReadFile(testdata + file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatal(err)
	}
}

// config decodes DMI configData back to Go values, with JSON-like numbers.
func config(t *testing.T, cv *pb.CustomizedValue) map[string]any {
	t.Helper()
	m, err := dmiconv.DecodeConfigData(cv)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDeviceToProtoFullExample converts the KubeEdge-style example that uses every field of
// the v1beta1 spec and checks the DMI message field by field.
func TestDeviceToProtoFullExample(t *testing.T) {
	var d devicesv1beta1.Device
	loadYAML(t, "device-modbus.yaml", &d)
	expected := map[string]devicetwin.Value{
		"heating": {Value: "true", Metadata: map[string]string{"timestamp": "1767225700000"}},
		"unknown": {Value: "x"}, // not a property of the device: ignored
	}
	got, err := deviceToProto(&d, expected)
	if err != nil {
		t.Fatal(err)
	}

	if got.GetName() != "thermostat-1" || got.GetNamespace() != "default" {
		t.Errorf("name = %s/%s", got.GetNamespace(), got.GetName())
	}
	spec := got.GetSpec()
	if spec.GetDeviceModelReference() != "thermostat-model" {
		t.Errorf("deviceModelReference = %q", spec.GetDeviceModelReference())
	}
	if spec.GetProtocol().GetProtocolName() != "modbus" {
		t.Errorf("protocolName = %q", spec.GetProtocol().GetProtocolName())
	}
	wantProto := map[string]any{
		"connectionType": "tcp", "ip": "192.168.10.21", "port": int64(502), "slaveID": int64(1), "maxRetries": int64(3),
		"serial": map[string]any{"baudRate": float64(19200), "parity": "even"},
	}
	if gotCfg := config(t, spec.GetProtocol().GetConfigData()); !reflect.DeepEqual(gotCfg, wantProto) {
		t.Errorf("protocol configData =\n %#v\nwant\n %#v", gotCfg, wantProto)
	}
	if n := len(spec.GetProperties()); n != 3 {
		t.Fatalf("%d properties, want 3", n)
	}

	temp := spec.GetProperties()[0]
	if temp.GetName() != "temperature" || temp.GetCollectCycle() != 2000 || temp.GetReportCycle() != 10000 || !temp.GetReportToCloud() || temp.GetDesired() != nil {
		t.Errorf("temperature = %v", temp)
	}
	if temp.GetVisitors().GetProtocolName() != "modbus" {
		t.Errorf("temperature visitors = %v", temp.GetVisitors())
	}
	wantVisitor := map[string]any{"register": "InputRegister", "offset": int64(0), "limit": int64(1), "scale": 0.1, "isSwap": false, "isRegisterSwap": false}
	if gotCfg := config(t, temp.GetVisitors().GetConfigData()); !reflect.DeepEqual(gotCfg, wantVisitor) {
		t.Errorf("temperature visitor configData = %#v, want %#v", gotCfg, wantVisitor)
	}
	wantTempPush := &pb.PushMethod{
		Mqtt: &pb.PushMethodMQTT{Address: "tcp://127.0.0.1:1883", Topic: "factory/lab-2/thermostat-1/temperature", Qos: 1, Retained: true},
		DbMethod: &pb.DBMethod{Influxdb2: &pb.DBMethodInfluxdb2{
			Influxdb2ClientConfig: &pb.Influxdb2ClientConfig{Url: "http://127.0.0.1:8086", Org: "acme", Bucket: "telemetry"},
			Influxdb2DataConfig: &pb.Influxdb2DataConfig{Measurement: "temperature", FieldKey: "value",
				Tag: map[string]string{"room": "lab-2", "unit": "celsius"}},
		}},
	}
	if !proto.Equal(temp.GetPushMethod(), wantTempPush) {
		t.Errorf("temperature pushMethod =\n %v\nwant\n %v", temp.GetPushMethod(), wantTempPush)
	}

	setpoint := spec.GetProperties()[1]
	wantDesired := &pb.TwinProperty{Value: "21.5", Metadata: map[string]string{"type": "float", "timestamp": "1767225600000"}}
	if setpoint.GetName() != "setpoint" || !proto.Equal(setpoint.GetDesired(), wantDesired) ||
		setpoint.GetCollectCycle() != 5000 || setpoint.GetReportCycle() != 5000 || !setpoint.GetReportToCloud() {
		t.Errorf("setpoint = %v", setpoint)
	}
	pm := setpoint.GetPushMethod()
	ad := pm.GetAnomalyDetection()
	pm = proto.Clone(pm).(*pb.PushMethod)
	pm.AnomalyDetection = nil
	wantSetpointPush := &pb.PushMethod{
		Http: &pb.PushMethodHTTP{Hostname: "http://127.0.0.1", Port: 8080, Requestpath: "/api/v1/setpoint", Timeout: 3000},
		Otel: &pb.PushMethodOTEL{EndpointURL: "http://127.0.0.1:4318/v1/metrics"},
		DbMethod: &pb.DBMethod{
			Redis:    &pb.DBMethodRedis{RedisClientConfig: &pb.RedisClientConfig{Addr: "127.0.0.1:6379", Db: 2, Poolsize: 10, MinIdleConns: 2}},
			Tdengine: &pb.DBMethodTDEngine{TdEngineClientConfig: &pb.TDEngineClientConfig{Addr: "127.0.0.1:6041", Dbname: "telemetry"}},
			Mysql:    &pb.DBMethodMySQL{MysqlClientConfig: &pb.MySQLClientConfig{Addr: "127.0.0.1:3306", Database: "telemetry", UserName: "mapper"}},
		},
	}
	if !proto.Equal(pm, wantSetpointPush) {
		t.Errorf("setpoint pushMethod =\n %v\nwant\n %v", pm, wantSetpointPush)
	}
	wantAD := map[string]any{"algorithm": "zscore", "windowSize": int64(60), "threshold": 3.5}
	if gotAD := config(t, &pb.CustomizedValue{Data: ad.GetData()}); !reflect.DeepEqual(gotAD, wantAD) {
		t.Errorf("anomalyDetection = %#v, want %#v", gotAD, wantAD)
	}

	// The twin's expected value replaces the Device's desired value.
	heating := spec.GetProperties()[2]
	wantHeating := &pb.TwinProperty{Value: "true", Metadata: map[string]string{"timestamp": "1767225700000"}}
	if heating.GetName() != "heating" || !proto.Equal(heating.GetDesired(), wantHeating) || heating.GetPushMethod() != nil {
		t.Errorf("heating = %v", heating)
	}

	wantMethods := []*pb.DeviceMethod{{Name: "setComfort", Description: "Set the setpoint and switch the heater on in one call", PropertyNames: []string{"setpoint", "heating"}}}
	if len(spec.GetMethods()) != 1 || !proto.Equal(spec.GetMethods()[0], wantMethods[0]) {
		t.Errorf("methods = %v", spec.GetMethods())
	}
	if st := got.GetStatus(); !st.GetReportToCloud() || st.GetReportCycle() != 30000 || len(st.GetTwins()) != 0 {
		t.Errorf("status = %v, want the stateReport settings", st)
	}

	// Without expected values the Device's desired value is pushed.
	got, err = deviceToProto(&d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := got.GetSpec().GetProperties()[2].GetDesired(); h.GetValue() != "false" || h.GetMetadata() != nil {
		t.Errorf("heating desired without twin = %v", h)
	}
}

func TestDeviceToProtoMinimalAndLegacyStatus(t *testing.T) {
	d := &devicesv1beta1.Device{}
	d.Name, d.Namespace = "bare", "ns"
	d.Status.ReportToCloud, d.Status.ReportCycle = true, 7
	got, err := deviceToProto(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &pb.Device{Name: "bare", Namespace: "ns", Spec: &pb.DeviceSpec{}, Status: &pb.DeviceStatus{ReportToCloud: true, ReportCycle: 7}}
	if !proto.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDeviceToProtoRejectsOverflowingRedisNumbers(t *testing.T) {
	d := &devicesv1beta1.Device{Spec: devicesv1beta1.DeviceSpec{Properties: []devicesv1beta1.DeviceProperty{{
		Name: "p",
		PushMethod: &devicesv1beta1.PushMethod{DBMethod: &devicesv1beta1.DBMethod{Redis: &devicesv1beta1.DBMethodRedis{
			RedisClientConfig: &devicesv1beta1.RedisClientConfig{DB: 1 << 40},
		}}},
	}}}}
	if _, err := deviceToProto(d, nil); err == nil {
		t.Fatal("a db number beyond int32 was accepted")
	}
}

func TestModelToProto(t *testing.T) {
	var m devicesv1beta1.DeviceModel
	loadYAML(t, "devicemodel-modbus.yaml", &m)
	got := modelToProto(&m)
	if got.GetName() != "thermostat-model" || got.GetNamespace() != "default" || len(got.GetSpec().GetProperties()) != 7 {
		t.Fatalf("model = %v", got)
	}
	want := &pb.ModelProperty{Name: "temperature", Description: "Room temperature in tenths of a degree", Type: "INT",
		AccessMode: "ReadOnly", Minimum: "-400", Maximum: "1250", Unit: "0.1°C"}
	if !proto.Equal(got.GetSpec().GetProperties()[0], want) {
		t.Errorf("temperature = %v, want %v", got.GetSpec().GetProperties()[0], want)
	}
	types := []string{}
	for _, p := range got.GetSpec().GetProperties() {
		types = append(types, p.GetType())
	}
	if want := []string{"INT", "FLOAT", "BOOLEAN", "STRING", "DOUBLE", "BYTES", "STREAM"}; !reflect.DeepEqual(types, want) {
		t.Errorf("types = %v, want %v", types, want)
	}
}
