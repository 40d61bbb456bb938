// Package v1beta1 holds the devices.kubeedge.io/v1beta1 API: Device, DeviceModel and
// DeviceStatus.
//
// The JSON field names are KubeEdge's, so that objects written for KubeEdge v1.23 decode here
// unchanged. The validation is deliberately no stricter than KubeEdge's CRDs: every object
// KubeEdge accepts, Skerry accepts too.
//
// +k8s:deepcopy-gen=package
// +groupName=devices.kubeedge.io
package v1beta1
