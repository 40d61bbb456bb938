// Package dmi is the edge's side of KubeEdge's Device Management Interface: a gRPC server on
// a unix socket (DeviceManagerService) that mappers register with and report to, and a
// client per registered mapper (DeviceMapperService) that pushes the node's devices to it.
//
// A mapper registers with its protocol and the unix socket it serves on; the answer carries
// the node's devices of that protocol and their models. The registration is kept in the
// store (local objects of type [MapperType]), so after an edgecore restart the server pushes
// the current devices to every known mapper without waiting for it to register again.
//
// Pushes are level-triggered: a store change or [Server.Resync] only marks a device or model
// dirty for a mapper, and the mapper's worker compares the current object with what it last
// pushed and sends the difference (RegisterDevice, UpdateDevice, RemoveDevice and the model
// calls). A failed push is retried with exponential backoff and then carries the state at
// that time, never a stale one. The desired values pushed are the twin's expected values in
// force (an app may have set them over MQTT) and, for other properties, the Device's.
//
// Reports (ReportDeviceStatus, ReportDeviceStates) go to the device twin. DMI carries no
// caller identity over a unix socket, so the socket's mode (0660) and group are the access
// control; a report is accepted for a device on this node that a registered mapper serves,
// naming properties of the device or its model.
package dmi
