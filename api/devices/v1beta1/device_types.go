package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:path=devices,singular=device,scope=Namespaced
// +kubebuilder:storageversion
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.deviceModelRef.name`
// +kubebuilder:printcolumn:name="Protocol",type=string,JSONPath=`.spec.protocol.protocolName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Device is one physical device attached to an edge node. Its reported state lives in the
// DeviceStatus of the same name and namespace.
type Device struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec describes the device and how to reach it.
	// +optional
	Spec DeviceSpec `json:"spec,omitempty"`

	// Status is deprecated: reported values live in DeviceStatus. Kept so that objects written
	// for KubeEdge (whose Device status accepts any field) still validate.
	// +optional
	Status DeviceLegacyStatus `json:"status,omitempty"`
}

// DeviceSpec describes one device: its model, the node it is attached to, and how mappers on
// that node talk to it.
type DeviceSpec struct {
	// DeviceModelRef names the DeviceModel, in the device's namespace, this device is an
	// instance of.
	// +optional
	DeviceModelRef *DeviceModelReference `json:"deviceModelRef,omitempty"`

	// NodeName is the edge node the device is attached to.
	// +optional
	NodeName string `json:"nodeName,omitempty"`

	// Protocol says how to connect to the device.
	// +optional
	Protocol *ProtocolConfig `json:"protocol,omitempty"`

	// Properties lists the device's properties with their desired values and how to read and
	// push them. Names should be unique and name properties of the model.
	// +optional
	Properties []DeviceProperty `json:"properties,omitempty"`

	// Methods lists operations of the device that act on several properties at once.
	// +optional
	Methods []DeviceMethod `json:"methods,omitempty"`

	// StateReport configures how the mapper reports the device's connection state.
	// +optional
	StateReport *StateReport `json:"stateReport,omitempty"`
}

// DeviceModelReference names a DeviceModel in the referring object's namespace.
type DeviceModelReference struct {
	// Name of the DeviceModel.
	// +optional
	Name string `json:"name,omitempty"`
}

// ProtocolConfig says which protocol reaches a device, with that protocol's settings.
type ProtocolConfig struct {
	// ProtocolName names the protocol; a mapper serves the devices whose protocol name equals
	// the protocol it registered.
	// +optional
	ProtocolName string `json:"protocolName,omitempty"`

	// ConfigData holds protocol settings (addresses, serial port parameters, ...). The API
	// passes it to the mapper without interpreting it.
	// +optional
	ConfigData *FreeForm `json:"configData,omitempty"`
}

// VisitorConfig says how a mapper accesses one property, e.g. which register holds it.
type VisitorConfig struct {
	// ProtocolName names the protocol the settings are for.
	// +optional
	ProtocolName string `json:"protocolName,omitempty"`

	// ConfigData holds the protocol's settings for the property; the API passes it to the
	// mapper without interpreting it.
	// +optional
	ConfigData *FreeForm `json:"configData,omitempty"`
}

// DeviceProperty is one property of a device: its desired value, how to access it and where to
// push the values read.
type DeviceProperty struct {
	// Name of the property, as defined in the device's model.
	// +optional
	Name string `json:"name,omitempty"`

	// Desired is the value the device should hold; only meaningful for writable properties.
	// +optional
	Desired *TwinProperty `json:"desired,omitempty"`

	// Visitors tells the mapper how to access the property on this device.
	// +optional
	Visitors *VisitorConfig `json:"visitors,omitempty"`

	// ReportCycle is how often, in milliseconds, the mapper reports the value.
	// +optional
	ReportCycle int64 `json:"reportCycle,omitempty"`

	// CollectCycle is how often, in milliseconds, the mapper reads the value from the device.
	// +optional
	CollectCycle int64 `json:"collectCycle,omitempty"`

	// ReportToCloud says whether reported values are sent to the cloud (DeviceStatus).
	// +optional
	ReportToCloud bool `json:"reportToCloud,omitempty"`

	// PushMethod says where the mapper pushes the values it reads, besides the twin.
	// +optional
	PushMethod *PushMethod `json:"pushMethod,omitempty"`
}

// TwinProperty is a property value with its metadata (e.g. timestamp, type).
type TwinProperty struct {
	// Value of the property, as a string whatever the property's type.
	// +optional
	Value string `json:"value"`

	// Metadata about the value, such as when it was reported.
	// +optional
	Metadata map[string]string `json:"metadata,omitempty"`
}

// PushMethod lists destinations a mapper pushes property values to.
type PushMethod struct {
	// HTTP pushes values to an HTTP endpoint.
	// +optional
	HTTP *PushMethodHTTP `json:"http,omitempty"`

	// MQTT publishes values to an MQTT broker.
	// +optional
	MQTT *PushMethodMQTT `json:"mqtt,omitempty"`

	// OTEL exports values as OpenTelemetry metrics.
	// +optional
	OTEL *PushMethodOTEL `json:"otel,omitempty"`

	// DBMethod writes values to a database.
	// +optional
	DBMethod *DBMethod `json:"dbMethod,omitempty"`

	// AnomalyDetection configures an anomaly detection service; the API does not interpret it.
	// +optional
	AnomalyDetection *FreeForm `json:"anomalyDetection,omitempty"`
}

// PushMethodHTTP pushes values to an HTTP endpoint.
type PushMethodHTTP struct {
	// HostName is the endpoint's scheme and host, e.g. http://127.0.0.1.
	// +optional
	HostName string `json:"hostName,omitempty"`

	// Port of the endpoint.
	// +optional
	Port int64 `json:"port,omitempty"`

	// RequestPath is the path values are posted to.
	// +optional
	RequestPath string `json:"requestPath,omitempty"`

	// Timeout of one request, in milliseconds.
	// +optional
	Timeout int64 `json:"timeout,omitempty"`
}

// PushMethodMQTT publishes values to an MQTT broker.
type PushMethodMQTT struct {
	// Address of the broker, e.g. tcp://127.0.0.1:1883.
	// +optional
	Address string `json:"address,omitempty"`

	// Topic values are published to.
	// +optional
	Topic string `json:"topic,omitempty"`

	// QoS of the publications (0, 1 or 2).
	// +optional
	QoS int32 `json:"qos,omitempty"`

	// Retained makes the broker keep the last value for new subscribers.
	// +optional
	Retained bool `json:"retained,omitempty"`
}

// PushMethodOTEL exports values as OpenTelemetry metrics.
type PushMethodOTEL struct {
	// EndpointURL of the OTLP receiver, e.g. http://127.0.0.1:4318/v1/metrics.
	// +optional
	EndpointURL string `json:"endpointURL,omitempty"`
}

// DBMethod lists databases a mapper writes values to.
type DBMethod struct {
	// Influxdb2 writes to InfluxDB 2.
	// +optional
	Influxdb2 *DBMethodInfluxdb2 `json:"influxdb2,omitempty"`

	// Redis writes to Redis.
	// +optional
	Redis *DBMethodRedis `json:"redis,omitempty"`

	// TDEngine writes to TDengine.
	// +optional
	TDEngine *DBMethodTDEngine `json:"TDEngine,omitempty"`

	// MySQL writes to MySQL.
	// +optional
	MySQL *DBMethodMySQL `json:"mysql,omitempty"`

	// Kwdb writes to KaiwuDB. Not used by Skerry's mappers; accepted because KubeEdge's CRD
	// has it.
	// +optional
	Kwdb *DBMethodKwdb `json:"Kwdb,omitempty"`
}

// DBMethodInfluxdb2 writes values to InfluxDB 2.
type DBMethodInfluxdb2 struct {
	// Influxdb2ClientConfig says where the database is.
	// +optional
	Influxdb2ClientConfig *Influxdb2ClientConfig `json:"influxdb2ClientConfig,omitempty"`

	// Influxdb2DataConfig says how values are written.
	// +optional
	Influxdb2DataConfig *Influxdb2DataConfig `json:"influxdb2DataConfig,omitempty"`
}

// Influxdb2ClientConfig says where an InfluxDB 2 database is. Its token is not part of the API.
type Influxdb2ClientConfig struct {
	// URL of the database, e.g. http://127.0.0.1:8086.
	// +optional
	URL string `json:"url,omitempty"`

	// Org is the InfluxDB organisation.
	// +optional
	Org string `json:"org,omitempty"`

	// Bucket values are written to.
	// +optional
	Bucket string `json:"bucket,omitempty"`
}

// Influxdb2DataConfig says how values are written to InfluxDB 2.
type Influxdb2DataConfig struct {
	// Measurement the points belong to.
	// +optional
	Measurement string `json:"measurement,omitempty"`

	// Tag is added to every point.
	// +optional
	Tag map[string]string `json:"tag,omitempty"`

	// FieldKey is the field name the value is stored under.
	// +optional
	FieldKey string `json:"fieldKey,omitempty"`
}

// DBMethodRedis writes values to Redis.
type DBMethodRedis struct {
	// RedisClientConfig says where the database is and how to connect.
	// +optional
	RedisClientConfig *RedisClientConfig `json:"redisClientConfig,omitempty"`
}

// RedisClientConfig says where a Redis database is and how to connect to it. The numbers are
// int64 because KubeEdge's schema leaves them unbounded (DMI carries them as int32).
type RedisClientConfig struct {
	// Addr of the server, host:port.
	// +optional
	Addr string `json:"addr,omitempty"`

	// DB is the database number.
	// +optional
	DB int64 `json:"db,omitempty"`

	// Poolsize is the maximum number of connections.
	// +optional
	Poolsize int64 `json:"poolsize,omitempty"`

	// MinIdleConns is the number of idle connections kept open.
	// +optional
	MinIdleConns int64 `json:"minIdleConns,omitempty"`
}

// DBMethodTDEngine writes values to TDengine.
type DBMethodTDEngine struct {
	// TDEngineClientConfig says where the database is.
	// +optional
	TDEngineClientConfig *TDEngineClientConfig `json:"TDEngineClientConfig,omitempty"`
}

// TDEngineClientConfig says where a TDengine database is.
type TDEngineClientConfig struct {
	// Addr of the server.
	// +optional
	Addr string `json:"addr,omitempty"`

	// DBName is the database name.
	// +optional
	DBName string `json:"dbName,omitempty"`
}

// DBMethodMySQL writes values to MySQL.
type DBMethodMySQL struct {
	// MySQLClientConfig says where the database is. Its password is not part of the API.
	// +optional
	MySQLClientConfig *MySQLClientConfig `json:"mysqlClientConfig,omitempty"`
}

// MySQLClientConfig says where a MySQL database is.
type MySQLClientConfig struct {
	// Addr of the server, host:port.
	// +optional
	Addr string `json:"addr,omitempty"`

	// Database name.
	// +optional
	Database string `json:"database,omitempty"`

	// UserName to connect as.
	// +optional
	UserName string `json:"userName,omitempty"`
}

// DBMethodKwdb writes values to KaiwuDB.
type DBMethodKwdb struct {
	// KWDBClientConfig says where the database is.
	// +optional
	KWDBClientConfig *KWDBClientConfig `json:"KWDBClientConfig,omitempty"`
}

// KWDBClientConfig says where a KaiwuDB database is.
type KWDBClientConfig struct {
	// Addr of the server.
	// +optional
	Addr string `json:"addr,omitempty"`

	// DBName is the database name.
	// +optional
	DBName string `json:"dbName,omitempty"`
}

// DeviceMethod is an operation of a device that acts on several properties.
type DeviceMethod struct {
	// Name of the method; should be unique within the device.
	// +optional
	Name string `json:"name,omitempty"`

	// Description is free text for humans.
	// +optional
	Description string `json:"description,omitempty"`

	// PropertyNames lists the properties the method reads or writes.
	// +optional
	PropertyNames []string `json:"propertyNames,omitempty"`
}

// StateReport configures how the mapper reports the device's connection state.
type StateReport struct {
	// ReportToCloud says whether state changes are sent to the cloud (DeviceStatus).
	// +optional
	ReportToCloud bool `json:"reportToCloud,omitempty"`

	// ReportCycle is how often, in milliseconds, the mapper reports the state.
	// +optional
	ReportCycle int64 `json:"reportCycle,omitempty"`
}

// DeviceLegacyStatus is the deprecated status of a Device. Skerry writes reported values to
// DeviceStatus; unknown fields are preserved because KubeEdge's schema preserves them.
// +kubebuilder:pruning:PreserveUnknownFields
type DeviceLegacyStatus struct {
	// ReportToCloud is deprecated; see DeviceProperty.ReportToCloud and StateReport.
	// +optional
	ReportToCloud bool `json:"reportToCloud,omitempty"`

	// ReportCycle is deprecated; see DeviceProperty.ReportCycle and StateReport.
	// +optional
	ReportCycle int64 `json:"reportCycle,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// DeviceList is a list of Devices.
type DeviceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []Device `json:"items"`
}
