package devicetwin

import "context"

// Value is one twin value with its metadata (timestamp in Unix ms as a
// string, type, ...).
type Value struct {
	Value    string
	Metadata map[string]string
}

// Report is what a mapper says of one property: the value read, and the
// desired value it applied. Either pointer may be nil when the mapper has
// nothing to say about that half.
type Report struct {
	Property        string
	Reported        *Value
	ObservedDesired *Value
}

// Reporter is the part of *Twin the DMI server uses; it exists so the DMI
// package can fake it in tests.
type Reporter interface {
	// ReportTwins records what a mapper read from a device and which desired
	// values it applied. Unknown devices, unknown properties and values
	// that do not fit the property type are rejected with an error and
	// nothing is stored.
	ReportTwins(ctx context.Context, namespace, name string, reports []Report) error
	// ReportState records a device's connectivity state (ok, online,
	// offline, unhealthy, unknown, disconnected).
	ReportState(ctx context.Context, namespace, name, state string) error
	// Expected returns the desired values in force now, whether set by the
	// cloud or by an app over MQTT, keyed by property name. It returns nil
	// for an unknown device.
	Expected(namespace, name string) map[string]Value
}

var _ Reporter = (*Twin)(nil)
