// Package nodestatus is the edge node's side of `kubectl get nodes`: it registers the node's
// v1.Node, keeps its status fresh and renews its heartbeat Lease, all through the durable
// outbox (see docs/protocol.md, "Upstream").
//
// Everything goes through the outbox rather than straight to the connection so that nothing
// is lost while the node is offline, and so that, after a reconnect, only the newest status
// and lease of the node go up: both are enqueued as coalesced entries, which replace a
// pending older version. The registration is a FIFO entry, enqueued once per process start.
//
// The update rules follow the kubelet: the status is computed every StatusUpdateFrequency
// and enqueued when anything but the heartbeat times changed, or at the latest every
// StatusReportFrequency; the Lease is renewed every LeaseRenewInterval regardless.
//
// Readiness: Ready is True when the container runtime answers its version call and False
// (reason ContainerRuntimeUnreachable) when it does not. A node built without a runtime
// (Deps.Runtime nil, the state before the Edged module exists) reports Ready True with a
// message saying so: the node's agent is alive and connected, which is what Ready means to
// the node lifecycle controller, and it keeps the node from being tainted unreachable and
// evicting whatever the cloud bound to it.
package nodestatus
