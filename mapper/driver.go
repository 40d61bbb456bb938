// Package mapper is the SDK for writing a DMI mapper: a process that drives the devices of one
// protocol for the edge. The protocol author supplies a small Driver; Run does the rest: it serves
// DeviceMapperService on its own unix socket, registers with the edge's DeviceManagerService,
// polls every readable property, applies desired values, reports twins and device states, and
// pushes readings to MQTT or HTTP where a property asks for it.
package mapper

import (
	"context"
	"time"
)

// Driver knows how to talk to devices of one protocol.
type Driver interface {
	// Protocol is the protocolName devices must have to be given to this mapper.
	Protocol() string
	// Connect opens the connection to one device. It is called when a device is added or
	// updated and again, with backoff, after the connection failed. The returned DeviceConn is
	// used by one goroutine at a time.
	Connect(ctx context.Context, dev *Device) (DeviceConn, error)
}

// DeviceConn is an open connection to one device.
type DeviceConn interface {
	// Read reads the current value of a property. An error marks the device unhealthy; the
	// SDK closes the connection and reconnects when reads keep failing.
	Read(ctx context.Context, p *Property) (Value, error)
	// Write applies a desired value, already checked against the property's type and range.
	Write(ctx context.Context, p *Property, v Value) error
	// Close releases the connection.
	Close() error
}

// Device is the SDK's decoded view of a DMI Device and its DeviceModel. The SDK hands the
// driver a private copy: a driver may keep it but must not change it.
type Device struct {
	Name      string
	Namespace string
	// Model is the name of the DeviceModel (same namespace).
	Model string
	// Protocol is spec.protocol.protocolName.
	Protocol string
	// ProtocolConfig is spec.protocol.configData decoded (see dmiconv.DecodeConfigData).
	ProtocolConfig map[string]any
	// Properties are the device's properties with their model attributes, in device order.
	// A device property the model does not define is left out (and logged).
	Properties []*Property
}

// Property is one property of a device: the model's attributes plus the device's settings.
type Property struct {
	Name       string
	Type       Type
	AccessMode AccessMode
	// Min and Max bound numeric values; nil when the model sets no bound.
	Min, Max *float64
	Unit     string
	// Visitor is the property's visitors.configData decoded: where the value lives on the
	// device (a register, a path, ...), in the driver's own terms.
	Visitor map[string]any
	// Desired is the desired value from the device spec; "" means none.
	Desired string
	// CollectCycle is how often the value is read and ReportCycle how often it is reported.
	// Both default to one second.
	CollectCycle  time.Duration
	ReportCycle   time.Duration
	ReportToCloud bool
	// Push says where else to send each reading; nil when nowhere.
	Push *PushMethod
}

// Writable reports whether the model allows writing the property.
func (p *Property) Writable() bool { return p.AccessMode == ReadWrite }

// AccessMode is a model property's access mode.
type AccessMode string

// The access modes of the DeviceModel API.
const (
	ReadWrite AccessMode = "ReadWrite"
	ReadOnly  AccessMode = "ReadOnly"
)

// PushMethod is where a property's readings go besides the edge. Only HTTP and MQTT are
// implemented; DB and OTEL are recorded so that the SDK can say they are not supported.
type PushMethod struct {
	HTTP *PushHTTP
	MQTT *PushMQTT
	// Unsupported names configured methods the SDK cannot push to ("dbMethod", "otel").
	Unsupported []string
}

// PushHTTP posts each reading as JSON to http://Hostname:Port/RequestPath.
type PushHTTP struct {
	Hostname    string
	Port        int64
	RequestPath string
	// Timeout bounds one request; defaults to 5 s.
	Timeout time.Duration
}

// PushMQTT publishes each reading as JSON to Topic on the broker at Address.
type PushMQTT struct {
	Address  string
	Topic    string
	QoS      byte
	Retained bool
}
