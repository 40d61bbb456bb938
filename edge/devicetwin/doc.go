// Package devicetwin is edgecore's device twin: for every device on the node (the
// Devices in the edge store) it keeps, per property, the expected value (desired, from
// the cloud or an app) and the actual value (read from the device), persists them in the
// store so they survive a restart, serves KubeEdge's MQTT topic API to apps and mappers
// ($hw/events/device/<namespace>/<name>/..., $hw/events/node/<node>/membership/...),
// takes the reports of DMI mappers ([Twin.ReportTwins], [Twin.ReportState]) and sends
// each device's DeviceStatus upstream through the outbox.
//
// The rules (value types, versions and crossing updates, result codes, upstream
// coalescing) are in docs/devices.md and on [Twin].
package devicetwin
