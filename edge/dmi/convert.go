package dmi

import (
	"fmt"
	"sort"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	pb "github.com/skerry-io/skerry/api/dmi/v1beta1"
	"github.com/skerry-io/skerry/edge/devicetwin"
	"github.com/skerry-io/skerry/mapper/dmiconv"
)

// deviceToProto converts a Device to the DMI message a mapper receives. expected holds the
// desired values in force now (the twin's); where it names a property of the device, it
// replaces spec.properties[].desired, because an app may have changed the desired value
// after the cloud's last word.
func deviceToProto(d *devicesv1beta1.Device, expected map[string]devicetwin.Value) (*pb.Device, error) {
	spec := &pb.DeviceSpec{}
	if d.Spec.DeviceModelRef != nil {
		spec.DeviceModelReference = d.Spec.DeviceModelRef.Name
	}
	if p := d.Spec.Protocol; p != nil {
		cd, err := configData(p.ConfigData)
		if err != nil {
			return nil, fmt.Errorf("spec.protocol.configData: %w", err)
		}
		spec.Protocol = &pb.ProtocolConfig{ProtocolName: p.ProtocolName, ConfigData: cd}
	}
	for i := range d.Spec.Properties {
		p, err := propertyToProto(&d.Spec.Properties[i], expected)
		if err != nil {
			return nil, fmt.Errorf("spec.properties[%d]: %w", i, err)
		}
		spec.Properties = append(spec.Properties, p)
	}
	for _, m := range d.Spec.Methods {
		spec.Methods = append(spec.Methods, &pb.DeviceMethod{
			Name:          m.Name,
			Description:   m.Description,
			PropertyNames: append([]string(nil), m.PropertyNames...),
		})
	}
	// Mappers read the state report settings from the message's status; spec.stateReport
	// supersedes the deprecated status fields.
	status := &pb.DeviceStatus{ReportToCloud: d.Status.ReportToCloud, ReportCycle: d.Status.ReportCycle}
	if sr := d.Spec.StateReport; sr != nil {
		status.ReportToCloud, status.ReportCycle = sr.ReportToCloud, sr.ReportCycle
	}
	return &pb.Device{Name: d.Name, Namespace: d.Namespace, Spec: spec, Status: status}, nil
}

func propertyToProto(p *devicesv1beta1.DeviceProperty, expected map[string]devicetwin.Value) (*pb.DeviceProperty, error) {
	out := &pb.DeviceProperty{
		Name:          p.Name,
		ReportCycle:   p.ReportCycle,
		CollectCycle:  p.CollectCycle,
		ReportToCloud: p.ReportToCloud,
	}
	if v, ok := expected[p.Name]; ok {
		out.Desired = &pb.TwinProperty{Value: v.Value, Metadata: cloneMap(v.Metadata)}
	} else if p.Desired != nil {
		out.Desired = &pb.TwinProperty{Value: p.Desired.Value, Metadata: cloneMap(p.Desired.Metadata)}
	}
	if v := p.Visitors; v != nil {
		cd, err := configData(v.ConfigData)
		if err != nil {
			return nil, fmt.Errorf("visitors.configData: %w", err)
		}
		out.Visitors = &pb.VisitorConfig{ProtocolName: v.ProtocolName, ConfigData: cd}
	}
	if pm := p.PushMethod; pm != nil {
		m, err := pushMethodToProto(pm)
		if err != nil {
			return nil, fmt.Errorf("pushMethod: %w", err)
		}
		out.PushMethod = m
	}
	return out, nil
}

func pushMethodToProto(pm *devicesv1beta1.PushMethod) (*pb.PushMethod, error) {
	out := &pb.PushMethod{}
	if h := pm.HTTP; h != nil {
		out.Http = &pb.PushMethodHTTP{Hostname: h.HostName, Port: h.Port, Requestpath: h.RequestPath, Timeout: h.Timeout}
	}
	if m := pm.MQTT; m != nil {
		out.Mqtt = &pb.PushMethodMQTT{Address: m.Address, Topic: m.Topic, Qos: m.QoS, Retained: m.Retained}
	}
	if o := pm.OTEL; o != nil {
		out.Otel = &pb.PushMethodOTEL{EndpointURL: o.EndpointURL}
	}
	if db := pm.DBMethod; db != nil {
		m, err := dbMethodToProto(db)
		if err != nil {
			return nil, err
		}
		out.DbMethod = m
	}
	if pm.AnomalyDetection != nil {
		cd, err := configData(pm.AnomalyDetection)
		if err != nil {
			return nil, fmt.Errorf("anomalyDetection: %w", err)
		}
		out.AnomalyDetection = &pb.AnomalyDetection{Data: cd.GetData()}
	}
	return out, nil
}

// dbMethodToProto converts the database targets. Kwdb has no DMI message and is dropped.
func dbMethodToProto(db *devicesv1beta1.DBMethod) (*pb.DBMethod, error) {
	out := &pb.DBMethod{}
	if i := db.Influxdb2; i != nil {
		m := &pb.DBMethodInfluxdb2{}
		if c := i.Influxdb2ClientConfig; c != nil {
			m.Influxdb2ClientConfig = &pb.Influxdb2ClientConfig{Url: c.URL, Org: c.Org, Bucket: c.Bucket}
		}
		if c := i.Influxdb2DataConfig; c != nil {
			m.Influxdb2DataConfig = &pb.Influxdb2DataConfig{Measurement: c.Measurement, Tag: cloneMap(c.Tag), FieldKey: c.FieldKey}
		}
		out.Influxdb2 = m
	}
	if r := db.Redis; r != nil {
		m := &pb.DBMethodRedis{}
		if c := r.RedisClientConfig; c != nil {
			// DMI carries these as int32; a value that does not fit is refused rather than
			// silently wrapped into another database number or pool size.
			dbn, err := toInt32("dbMethod.redis.redisClientConfig.db", c.DB)
			if err != nil {
				return nil, err
			}
			pool, err := toInt32("dbMethod.redis.redisClientConfig.poolsize", c.Poolsize)
			if err != nil {
				return nil, err
			}
			idle, err := toInt32("dbMethod.redis.redisClientConfig.minIdleConns", c.MinIdleConns)
			if err != nil {
				return nil, err
			}
			m.RedisClientConfig = &pb.RedisClientConfig{Addr: c.Addr, Db: dbn, Poolsize: pool, MinIdleConns: idle}
		}
		out.Redis = m
	}
	if t := db.TDEngine; t != nil {
		m := &pb.DBMethodTDEngine{}
		if c := t.TDEngineClientConfig; c != nil {
			m.TdEngineClientConfig = &pb.TDEngineClientConfig{Addr: c.Addr, Dbname: c.DBName}
		}
		out.Tdengine = m
	}
	if s := db.MySQL; s != nil {
		m := &pb.DBMethodMySQL{}
		if c := s.MySQLClientConfig; c != nil {
			m.MysqlClientConfig = &pb.MySQLClientConfig{Addr: c.Addr, Database: c.Database, UserName: c.UserName}
		}
		out.Mysql = m
	}
	return out, nil
}

func toInt32(field string, v int64) (int32, error) {
	if v < -1<<31 || v > 1<<31-1 {
		return 0, fmt.Errorf("%s: %d does not fit DMI's int32", field, v)
	}
	return int32(v), nil
}

// modelToProto converts a DeviceModel. DMI's model has no protocol, protocol settings or
// visitors: mappers take those from the device.
func modelToProto(m *devicesv1beta1.DeviceModel) *pb.DeviceModel {
	spec := &pb.DeviceModelSpec{}
	for _, p := range m.Spec.Properties {
		spec.Properties = append(spec.Properties, &pb.ModelProperty{
			Name:        p.Name,
			Description: p.Description,
			Type:        string(p.Type),
			AccessMode:  string(p.AccessMode),
			Minimum:     p.Minimum,
			Maximum:     p.Maximum,
			Unit:        p.Unit,
		})
	}
	return &pb.DeviceModel{Name: m.Name, Namespace: m.Namespace, Spec: spec}
}

// configData converts a free-form object to DMI's map of Any values, integers kept exact; nil
// stays nil.
func configData(f *devicesv1beta1.FreeForm) (*pb.CustomizedValue, error) {
	if f == nil {
		return nil, nil
	}
	return dmiconv.EncodeConfigJSON(f.JSON())
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sortedKeys returns m's keys in order, so that pushes happen in a stable order.
func sortedKeys[V any](m map[objKey]V) []objKey {
	keys := make([]objKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	return keys
}
