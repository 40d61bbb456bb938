package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +genclient:noStatus
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=devicemodels,singular=devicemodel,scope=Namespaced
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Protocol",type=string,JSONPath=`.spec.protocol`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// DeviceModel describes a kind of device: the properties every device of that kind has and how
// to reach them. Devices refer to a model in their own namespace.
type DeviceModel struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the model.
	// +optional
	Spec DeviceModelSpec `json:"spec,omitempty"`
}

// DeviceModelSpec is the blueprint shared by the devices of one model.
type DeviceModelSpec struct {
	// Protocol names the protocol devices of this model speak, e.g. modbus.
	// +optional
	Protocol string `json:"protocol,omitempty"`

	// ProtocolConfigData holds protocol settings shared by all devices of this model.
	// +optional
	ProtocolConfigData *FreeForm `json:"protocolConfigData,omitempty"`

	// Properties lists the properties of devices of this model. Names should be unique.
	// +optional
	Properties []ModelProperty `json:"properties,omitempty"`
}

// ModelProperty describes one property of a device model, such as a temperature reading or a
// switch.
type ModelProperty struct {
	// Name of the property; devices and twins refer to it by this name.
	// +optional
	Name string `json:"name,omitempty"`

	// Description is free text for humans.
	// +optional
	Description string `json:"description,omitempty"`

	// Type is the property's value type.
	// +optional
	Type PropertyType `json:"type,omitempty"`

	// AccessMode says whether the property can be written (ReadWrite) or only read (ReadOnly).
	// +optional
	AccessMode PropertyAccessMode `json:"accessMode,omitempty"`

	// Minimum is the lowest valid value, written as a string.
	// +optional
	Minimum string `json:"minimum,omitempty"`

	// Maximum is the highest valid value, written as a string.
	// +optional
	Maximum string `json:"maximum,omitempty"`

	// Unit of the value, e.g. "°C".
	// +optional
	Unit string `json:"unit,omitempty"`

	// Visitors tells mappers how to access the property, for every device of this model.
	// +optional
	Visitors *VisitorConfig `json:"visitors,omitempty"`
}

// PropertyType is the value type of a model property.
// +kubebuilder:validation:Enum=INT;FLOAT;DOUBLE;STRING;BOOLEAN;BYTES;STREAM
type PropertyType string

// The property types KubeEdge defines.
const (
	PropertyTypeInt     PropertyType = "INT"
	PropertyTypeFloat   PropertyType = "FLOAT"
	PropertyTypeDouble  PropertyType = "DOUBLE"
	PropertyTypeString  PropertyType = "STRING"
	PropertyTypeBoolean PropertyType = "BOOLEAN"
	PropertyTypeBytes   PropertyType = "BYTES"
	PropertyTypeStream  PropertyType = "STREAM"
)

// PropertyAccessMode says whether a property may be written.
// +kubebuilder:validation:Enum=ReadWrite;ReadOnly
type PropertyAccessMode string

// The access modes KubeEdge defines.
const (
	AccessModeReadWrite PropertyAccessMode = "ReadWrite"
	AccessModeReadOnly  PropertyAccessMode = "ReadOnly"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// DeviceModelList is a list of DeviceModels.
type DeviceModelList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []DeviceModel `json:"items"`
}
