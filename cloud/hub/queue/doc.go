// Package queue is the cloud's downstream side of level-triggered sync (architecture principle
// 2): a per-node queue that holds only the newest version of each object, sends at most one
// message per object at a time, retries until the edge acknowledges a commit, and the inventory
// diff the hub sends when an edge (re)connects.
//
// # Contract with the edge
//
// After every pending operation of a key has been acknowledged, the edge holds for that key
// exactly what the last operation given to the queue says, provided the edge applies
//   - an upsert as "store this object under its key" (replacing an object with another uid, which
//     a Kubernetes watch can produce without a delete in between, e.g. after a relist), and
//   - a delete as "remove the object stored under this key".
//
// # Deletes and uid changes
//
// A delete is never coalesced away by a later upsert: delete(uid A) followed by upsert(uid B)
// of the same name reaches the edge as delete-then-upsert, in that order. The edge could reach
// the same final state from the upsert alone, but then its consumers (edged tearing down pod A,
// metaserver watchers) would see an update where Kubernetes saw DELETED then ADDED. [Diff]
// follows the same rule and answers a uid change with a delete and an upsert.
//
// Pending operations per key therefore take one of four shapes: nothing, [upsert], [delete]
// or [delete, upsert]. A newer upsert replaces a pending upsert, a delete replaces a pending
// upsert (that upsert never reached the edge) and a newer delete replaces a pending delete.
//
// # Bounds
//
// Options.MaxKeys bounds the number of keys with work queued or in flight. Upserts of a new key
// beyond it fail with [ErrFull]; the caller must surface that (a metric, a log line naming the node) and
// recover by a later resync, which re-derives the difference from the desired set. Deletes are
// always accepted: a dropped delete would leave an object, possibly a Secret the node is no
// longer authorized to see, on the edge indefinitely, and deletes are bounded anyway by what
// the edge holds. Updates of keys already queued are always accepted because they do not grow
// the queue.
package queue
