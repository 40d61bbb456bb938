// Package hub is CloudHub's session manager: it turns the connections that [transport] servers
// accept (WebSocket and QUIC) into one session per edge node, and is the only place in
// cloudcore that sees the wire envelope (architecture principle 1). Everything behind it works
// with typed events: [SessionObserver] for connects and disconnects, [Upstream] for what the
// edge sends, [DesiredSource] for the resync, and [Hub.Upsert] / [Hub.Delete] for what goes
// down.
//
// # Sessions
//
// A node's identity is the node name the transport verified against its client certificate.
// There is at most one session per node: a second connection for the same node replaces the
// first, which is closed with [ReasonReplaced]; the new session starts only after the old one
// has stopped and returned its in-flight messages to the queue, so the two never send at the
// same time. Connections beyond Config.MaxNodes distinct nodes are refused with a close reason
// naming the limit.
//
// # Keepalive
//
// Any message from the edge, keepalive or not, proves the session alive; a session silent for
// Config.KeepaliveTimeout is closed. The hub does not answer keepalives: KubeEdge's cloud does
// not either, so a KubeEdge edge expects no answer, and an edge learns of a dead link from its
// own failing writes and the transport (QUIC's idle timeout, TCP errors).
//
// # Downstream
//
// Each node has a [queue.NodeQueue] (and a send rate limiter) that outlives its sessions, in
// memory. A session's sender takes the queue's next message and writes it; the edge's
// `response` with parent_msg_id acknowledges it ([queue.NodeQueue.Ack]), an `error` answer
// refuses it ([queue.NodeQueue.Nack]). Every `response` or `error` that carries a
// parent_msg_id is taken as such an answer: the hub sends the edge nothing else that expects
// one, so these never reach [Upstream].
//
// When a session ends, the messages it sent that were not answered are handed back with
// Nack, so they are resent on the next session after the key's retry backoff (default at
// most 1 s) rather than after the ack timeout (default 30 s). A Nack also counts as a failed
// attempt for that backoff; a queue method that returns a message without that penalty would
// be cleaner (see the report for the queue's owner).
//
// # Upstream
//
// Messages from the edge that are not answers, keepalives or the inventory go to
// [Upstream.Handle] one at a time per node, in arrival order; the hub acknowledges each
// ([wire.Message.Ack]) after Handle returned nil and answers [wire.Message.Error] otherwise.
// Messages still waiting when a session ends are dropped unanswered: the edge's durable outbox
// sends them again.
//
// # Resync
//
// On the edge's inventory message the hub asks [DesiredSource] for the node's desired set,
// computes [queue.Diff] and queues exactly the deletes and upserts, then acknowledges the
// inventory (in the same per-node order as upstream messages). A delete built by the hub
// ([NewDeleteMessage]) is route {source "cloudhub", group "resource", operation "delete",
// resource <edge-form key>} with content {"metadata": {"name", "namespace", "uid"}}, the
// smallest object an edge can decode as Kubernetes object metadata. If the queue is full the
// inventory is answered with an error, so the edge sends it again and the resync is retried.
//
// # Rate limit
//
// Downstream object messages are paced by a per-node token bucket (Config.SendRate,
// Config.SendBurst). Answers to the edge (acks and errors) are not: they are bounded by what
// the edge sends.
package hub
