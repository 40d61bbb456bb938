// Package wire is the cloud↔edge wire format that cloudcore and edgecore share: the
// KubeEdge-compatible JSON message envelope, its strict codec, and the resource strings that
// address objects on the wire (docs: ../shared/spec/kubeedge-compat.md §2).
//
// It exists so that exactly one place in Skerry knows the envelope (architecture principle 1):
// the hubs decode a frame here, turn it into typed events, and encode typed results back into a
// [Message] here. Everything behind a hub works with Go types.
//
// What the package does:
//   - [Message], [Header], [Route]: the envelope with the exact KubeEdge JSON names, constructors
//     for new messages, replies, acks, errors and the keepalive.
//   - [Decode], [DecodeFrom], [Encode], [AppendEncode]: a hand-written strict codec. It rejects
//     oversize input, anything that is not exactly one JSON object, unknown and duplicate fields,
//     missing required fields and values no KubeEdge peer would send. Whatever Decode accepts,
//     Encode writes back in a form Decode accepts again as an equal message.
//   - [Key], [ParseResource], [ParseCloudResource], [ToEdge], [ToCloud]: the resource strings
//     `<namespace>/<type>[/<name>]` (edge form) and `node/<nodeName>/...` (cloud form).
//
// What it deliberately does not do:
//   - No routing and no module registry: a Message is data; who handles it is decided by typed
//     code at the hubs, not by strings looked up here.
//   - No interface{} payloads: Content stays raw JSON ([encoding/json.RawMessage]). The receiver
//     decodes it into the concrete type it expects (for Kubernetes objects, preferably with a
//     strict decoder such as sigs.k8s.io/json, which also reports duplicate fields inside the
//     object; this package validates the content's syntax but does not look inside it).
//   - No transport: framing, TLS, sessions, acks and resends belong to the hubs.
package wire
