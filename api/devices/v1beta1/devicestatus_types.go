package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=devicestatuses,singular=devicestatus,scope=Namespaced
// +kubebuilder:storageversion
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Last-Online",type=string,JSONPath=`.status.lastOnlineTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// DeviceStatus holds what the edge reported about a Device: property values and connection
// state. It has the Device's name and namespace and an owner reference to it.
type DeviceStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is empty: a DeviceStatus belongs to the Device named like it (and referenced as its
	// owner). It exists so that objects written by KubeEdge, which carry spec: {}, validate.
	// +optional
	Spec DeviceStatusSpec `json:"spec,omitempty"`

	// Status is the reported state of the device.
	// +optional
	Status DeviceStatusStatus `json:"status,omitempty"`
}

// DeviceStatusSpec has no fields; see DeviceStatus.Spec.
type DeviceStatusSpec struct{}

// DeviceStatusStatus is the reported state of a device.
type DeviceStatusStatus struct {
	// Twins holds, per property, the value read from the device and the desired value the
	// device has applied.
	// +optional
	Twins []Twin `json:"twins,omitempty"`

	// State is the device's connection state as the mapper reports it. Known values are
	// ok, online, offline, unhealthy, unknown and disconnected; others are accepted, since
	// mappers may report their own.
	// +optional
	State DeviceState `json:"state,omitempty"`

	// LastOnlineTime is when the device was last seen online, as the mapper wrote it.
	// +optional
	LastOnlineTime string `json:"lastOnlineTime,omitempty"`

	// Extensions holds mapper-specific data; the API does not interpret it.
	// +optional
	Extensions *FreeForm `json:"extensions,omitempty"`
}

// Twin is the reported state of one device property.
type Twin struct {
	// PropertyName names the property, as defined in the device's model.
	// +optional
	PropertyName string `json:"propertyName,omitempty"`

	// Reported is the value last read from the device.
	// +optional
	Reported *TwinProperty `json:"reported,omitempty"`

	// ObservedDesired is the desired value the device has applied.
	// +optional
	ObservedDesired *TwinProperty `json:"observedDesired,omitempty"`
}

// DeviceState is a device's connection state. It is an open set: mappers may report values
// beyond the constants below.
type DeviceState string

// Device states reported by KubeEdge mappers.
const (
	DeviceStateOK           DeviceState = "ok"
	DeviceStateOnline       DeviceState = "online"
	DeviceStateOffline      DeviceState = "offline"
	DeviceStateUnhealthy    DeviceState = "unhealthy"
	DeviceStateUnknown      DeviceState = "unknown"
	DeviceStateDisconnected DeviceState = "disconnected"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// DeviceStatusList is a list of DeviceStatuses.
type DeviceStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []DeviceStatus `json:"items"`
}
