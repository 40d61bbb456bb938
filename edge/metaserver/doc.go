// Package metaserver serves a Kubernetes-compatible, read-mostly API on the edge node
// (127.0.0.1:10550 by default) from the edge's local store, so that applications, kubectl and
// client-go informers keep working whether or not the node is connected to the cloud.
//
// The store and the cloud link are reached through two small interfaces defined here, [Store]
// and [Forwarder], so that this package depends on neither edge/store nor edge/hub; the daemon
// wires them with an adapter.
//
// # Reads
//
// core/v1 pods, configmaps, secrets, nodes, services, endpoints; discovery.k8s.io/v1
// endpointslices; devices.kubeedge.io/v1beta1 devices and devicemodels; coordination.k8s.io/v1
// leases. Each maps to one wire type (see resources.go). GET, LIST (all namespaces or one,
// labelSelector, fieldSelector, limit and continue) and WATCH follow the apiserver:
//
//   - Every served object's metadata.resourceVersion is the local store revision of its last
//     change, and a list's resourceVersion is the store revision, so list → watch → relist is
//     consistent with the local store. The cloud's resourceVersion is kept in the annotation
//     [CloudResourceVersionAnnotation].
//   - Pages of a continued list report the first page's revision; each page reads the current
//     store, so a client that then watches from that revision replays what changed meanwhile.
//   - Watch: resourceVersion "" or "0" sends the current objects as ADDED, then the changes;
//     N sends the changes after N; a compacted N ends with an ERROR event carrying a 410 Expired
//     Status, which makes client-go relist. sendInitialEvents=true (client-go's watch-list mode)
//     is honoured, with the "k8s.io/initial-events-end" bookmark. With a selector, an object
//     leaving the selection is sent as DELETED. BOOKMARKs are periodic when allowed;
//     timeoutSeconds ends the stream.
//   - Accept "as=Table;v=v1;g=meta.k8s.io" gets a Table (also in watches, for kubectl get -w),
//     "as=PartialObjectMetadata" gets metadata only; everything else is JSON. Discovery is
//     served only in its legacy form; kubectl, asking for aggregated discovery first, falls back.
//
// # Writes
//
// Only the writes a node makes are forwarded, as sync wire messages (docs/protocol.md): pod
// status PUT/PATCH (podstatus, podpatch), node status PUT/PATCH (nodestatus, nodepatch), core/v1
// event POST/PUT (event), and leases in kube-node-lease (lease). Patches must be strategic merge
// patches, which is what the cloud applies. Everything else is refused with 405. When the node is
// offline a write gets 503 with a Status saying so.
//
// # Security
//
// There is no authentication: the listener must stay on loopback unless [Config.AllowRemote].
package metaserver
