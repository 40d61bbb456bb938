package queue

import (
	"slices"

	"github.com/skerry-io/skerry/pkg/wire"
)

// Diff is the resync on (re)connect: given the node's desired set and the inventory the edge
// reported (both key → version), it returns what to send so the edge ends up holding exactly
// the desired set: deletes first, then upserts.
//
//   - on the edge, not desired: delete;
//   - desired, not on the edge: upsert;
//   - uid differs: delete and upsert (the edge holds another object of the same name; see
//     the package doc for why that is not sent as an update);
//   - resourceVersion differs: upsert. ResourceVersions are opaque, so "differs" is the only
//     test: "9" against "10" is not older or newer, just different.
//
// Both slices are sorted by namespace, type and name, so logs and tests are stable.
func Diff(desired, inventory map[wire.Key]Version) (upserts, deletes []wire.Key) {
	for k, want := range desired {
		have, ok := inventory[k]
		switch {
		case !ok:
			upserts = append(upserts, k)
		case have.UID != want.UID:
			deletes = append(deletes, k)
			upserts = append(upserts, k)
		case have.ResourceVersion != want.ResourceVersion:
			upserts = append(upserts, k)
		}
	}
	for k := range inventory {
		if _, ok := desired[k]; !ok {
			deletes = append(deletes, k)
		}
	}
	slices.SortFunc(upserts, wire.Key.Compare)
	slices.SortFunc(deletes, wire.Key.Compare)
	return upserts, deletes
}
