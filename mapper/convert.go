package mapper

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/skerry-io/skerry/api/dmi/v1beta1"
	"github.com/skerry-io/skerry/mapper/dmiconv"
)

// Bounds on what the edge may hand a mapper.
const (
	maxNameLen    = 253
	maxProperties = 1024
	// minCycle keeps a typo ("1" meaning a second) from turning into a busy loop.
	minCycle     = 10 * time.Millisecond
	defaultCycle = time.Second
	// defaultHTTPTimeout bounds one push request when the device sets no timeout.
	defaultHTTPTimeout = 5 * time.Second
)

// key names a device or model: namespace/name.
func key(namespace, name string) string { return namespace + "/" + name }

func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > maxNameLen || strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("%s %.64q is not a valid name", what, s)
	}
	return nil
}

// checkDevice validates the parts of a DMI device the SDK relies on before anything is
// started for it.
func checkDevice(d *v1beta1.Device) error {
	if d == nil {
		return fmt.Errorf("no device")
	}
	if err := checkName("device name", d.GetName()); err != nil {
		return err
	}
	if d.GetNamespace() != "" {
		if err := checkName("device namespace", d.GetNamespace()); err != nil {
			return err
		}
	}
	if err := checkName("device model", d.GetSpec().GetDeviceModelReference()); err != nil {
		return err
	}
	if n := len(d.GetSpec().GetProperties()); n > maxProperties {
		return fmt.Errorf("device has %d properties, limit %d", n, maxProperties)
	}
	return nil
}

func checkModel(m *v1beta1.DeviceModel) error {
	if m == nil {
		return fmt.Errorf("no model")
	}
	if err := checkName("model name", m.GetName()); err != nil {
		return err
	}
	if m.GetNamespace() != "" {
		if err := checkName("model namespace", m.GetNamespace()); err != nil {
			return err
		}
	}
	if n := len(m.GetSpec().GetProperties()); n > maxProperties {
		return fmt.Errorf("model has %d properties, limit %d", n, maxProperties)
	}
	return nil
}

// decodeDevice builds the driver's view of a device from the DMI device and its model. Errors
// in one property are returned as skipped (the property is left out); an error in the device
// itself fails the whole device.
func decodeDevice(d *v1beta1.Device, m *v1beta1.DeviceModel) (dev *Device, skipped []error, err error) {
	if err := checkDevice(d); err != nil {
		return nil, nil, err
	}
	pc, err := dmiconv.DecodeConfigData(d.GetSpec().GetProtocol().GetConfigData())
	if err != nil {
		return nil, nil, fmt.Errorf("protocol configData: %w", err)
	}
	dev = &Device{
		Name:           d.GetName(),
		Namespace:      d.GetNamespace(),
		Model:          d.GetSpec().GetDeviceModelReference(),
		Protocol:       d.GetSpec().GetProtocol().GetProtocolName(),
		ProtocolConfig: pc,
	}
	modelProps := make(map[string]*v1beta1.ModelProperty, len(m.GetSpec().GetProperties()))
	for _, mp := range m.GetSpec().GetProperties() {
		modelProps[mp.GetName()] = mp
	}
	seen := make(map[string]bool, len(d.GetSpec().GetProperties()))
	for _, dp := range d.GetSpec().GetProperties() {
		if seen[dp.GetName()] {
			skipped = append(skipped, fmt.Errorf("property %.64q: listed twice", dp.GetName()))
			continue
		}
		seen[dp.GetName()] = true
		p, err := decodeProperty(dp, modelProps[dp.GetName()])
		if err != nil {
			skipped = append(skipped, fmt.Errorf("property %.64q: %w", dp.GetName(), err))
			continue
		}
		dev.Properties = append(dev.Properties, p)
	}
	return dev, skipped, nil
}

func decodeProperty(dp *v1beta1.DeviceProperty, mp *v1beta1.ModelProperty) (*Property, error) {
	if err := checkName("name", dp.GetName()); err != nil {
		return nil, err
	}
	if mp == nil {
		return nil, fmt.Errorf("not defined in the device model")
	}
	t, err := ParseType(mp.GetType())
	if err != nil {
		return nil, err
	}
	p := &Property{
		Name:          dp.GetName(),
		Type:          t,
		AccessMode:    ReadOnly,
		Unit:          mp.GetUnit(),
		Desired:       dp.GetDesired().GetValue(),
		ReportToCloud: dp.GetReportToCloud(),
	}
	switch AccessMode(mp.GetAccessMode()) {
	case ReadWrite:
		p.AccessMode = ReadWrite
	case ReadOnly, "":
	default:
		return nil, fmt.Errorf("unknown access mode %.32q", mp.GetAccessMode())
	}
	if p.Min, err = parseBound("minimum", mp.GetMinimum(), t); err != nil {
		return nil, err
	}
	if p.Max, err = parseBound("maximum", mp.GetMaximum(), t); err != nil {
		return nil, err
	}
	if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
		return nil, fmt.Errorf("minimum %g is above maximum %g", *p.Min, *p.Max)
	}
	if p.Visitor, err = dmiconv.DecodeConfigData(dp.GetVisitors().GetConfigData()); err != nil {
		return nil, fmt.Errorf("visitor configData: %w", err)
	}
	p.CollectCycle = cycle(dp.GetCollectCycle())
	p.ReportCycle = cycle(dp.GetReportCycle())
	p.Push = decodePush(dp.GetPushMethod())
	return p, nil
}

// parseBound parses a model minimum or maximum; only numeric types have one, and an empty
// string means none.
func parseBound(what, s string, t Type) (*float64, error) {
	s = strings.TrimSpace(s)
	if s == "" || !t.Numeric() {
		return nil, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return nil, fmt.Errorf("%s %.32q is not a number", what, s)
	}
	return &f, nil
}

// cycle converts a cycle in milliseconds, with the default for 0 (or a negative value).
func cycle(ms int64) time.Duration {
	if ms <= 0 {
		return defaultCycle
	}
	if ms > int64(24*time.Hour/time.Millisecond) {
		return 24 * time.Hour
	}
	return max(time.Duration(ms)*time.Millisecond, minCycle)
}

func decodePush(pm *v1beta1.PushMethod) *PushMethod {
	if pm == nil {
		return nil
	}
	out := &PushMethod{}
	if h := pm.GetHttp(); h != nil && h.GetHostname() != "" {
		out.HTTP = &PushHTTP{
			Hostname:    h.GetHostname(),
			Port:        h.GetPort(),
			RequestPath: h.GetRequestpath(),
			Timeout:     defaultHTTPTimeout,
		}
		if h.GetTimeout() > 0 {
			out.HTTP.Timeout = min(time.Duration(h.GetTimeout())*time.Millisecond, time.Minute)
		}
	}
	if q := pm.GetMqtt(); q != nil && q.GetAddress() != "" {
		out.MQTT = &PushMQTT{
			Address:  q.GetAddress(),
			Topic:    q.GetTopic(),
			QoS:      byte(min(max(q.GetQos(), 0), 2)),
			Retained: q.GetRetained(),
		}
	}
	if pm.GetDbMethod() != nil {
		out.Unsupported = append(out.Unsupported, "dbMethod")
	}
	if pm.GetOtel() != nil {
		out.Unsupported = append(out.Unsupported, "otel")
	}
	if out.HTTP == nil && out.MQTT == nil && out.Unsupported == nil {
		return nil
	}
	return out
}
