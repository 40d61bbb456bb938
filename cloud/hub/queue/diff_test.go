package queue

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

func TestDiff(t *testing.T) {
	cm := func(name string) wire.Key {
		return wire.Key{Namespace: "default", Type: wire.TypeConfigMap, Name: name}
	}
	node := wire.Key{Type: wire.TypeNode, Name: "edge-1"}
	v := func(uid, rv string) Version { return Version{UID: uid, ResourceVersion: rv} }
	tests := []struct {
		name               string
		desired, inventory map[wire.Key]Version
		upserts, deletes   []wire.Key
	}{
		{name: "both empty"},
		{name: "nil and empty maps", desired: map[wire.Key]Version{}, inventory: nil},
		{name: "in sync",
			desired:   map[wire.Key]Version{pod("a"): v("1", "5"), node: v("n", "7")},
			inventory: map[wire.Key]Version{pod("a"): v("1", "5"), node: v("n", "7")}},
		{name: "new edge gets everything, sorted",
			desired: map[wire.Key]Version{pod("b"): v("2", "1"), pod("a"): v("1", "1"), cm("c"): v("3", "1"), node: v("n", "1")},
			upserts: []wire.Key{node, cm("c"), pod("a"), pod("b")}},
		{name: "desired set empty deletes everything",
			inventory: map[wire.Key]Version{pod("a"): v("1", "1"), cm("c"): v("3", "1")},
			deletes:   []wire.Key{cm("c"), pod("a")}},
		{name: "resourceVersions are opaque: 10 and 9 just differ",
			desired:   map[wire.Key]Version{pod("a"): v("1", "9"), pod("b"): v("2", "10")},
			inventory: map[wire.Key]Version{pod("a"): v("1", "10"), pod("b"): v("2", "9")},
			upserts:   []wire.Key{pod("a"), pod("b")}},
		{name: "same number, different spelling differs",
			desired:   map[wire.Key]Version{pod("a"): v("1", "010")},
			inventory: map[wire.Key]Version{pod("a"): v("1", "10")},
			upserts:   []wire.Key{pod("a")}},
		{name: "uid change is delete then upsert, even with the same resourceVersion",
			desired:   map[wire.Key]Version{pod("a"): v("B", "5")},
			inventory: map[wire.Key]Version{pod("a"): v("A", "5")},
			upserts:   []wire.Key{pod("a")}, deletes: []wire.Key{pod("a")}},
		{name: "mixed",
			desired:   map[wire.Key]Version{pod("keep"): v("1", "1"), pod("upd"): v("2", "2"), pod("new"): v("3", "1"), pod("repl"): v("N", "1")},
			inventory: map[wire.Key]Version{pod("keep"): v("1", "1"), pod("upd"): v("2", "1"), pod("gone"): v("4", "1"), pod("repl"): v("O", "1")},
			upserts:   []wire.Key{pod("new"), pod("repl"), pod("upd")},
			deletes:   []wire.Key{pod("gone"), pod("repl")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, del := Diff(tt.desired, tt.inventory)
			if !slices.Equal(up, tt.upserts) || !slices.Equal(del, tt.deletes) {
				t.Fatalf("Diff = upserts %v deletes %v, want upserts %v deletes %v", up, del, tt.upserts, tt.deletes)
			}
		})
	}
}

// checkDiff is the property: applying the diff to the inventory (deletes, then upserts with
// the desired version) yields exactly the desired set, nothing in sync is sent, and the
// result is sorted.
func checkDiff(t *testing.T, desired, inventory map[wire.Key]Version) {
	t.Helper()
	up, del := Diff(desired, inventory)
	edge := maps.Clone(inventory)
	if edge == nil {
		edge = map[wire.Key]Version{}
	}
	for _, k := range del {
		if _, ok := edge[k]; !ok {
			t.Fatalf("delete of %s, which the edge does not hold", k)
		}
		delete(edge, k)
	}
	for _, k := range up {
		if have, ok := inventory[k]; ok && have == desired[k] {
			t.Fatalf("upsert of %s, which is in sync", k)
		}
		edge[k] = desired[k]
	}
	if !maps.Equal(edge, desired) {
		t.Fatalf("after the diff the edge holds %v, want %v", edge, desired)
	}
	if !slices.IsSortedFunc(up, wire.Key.Compare) || !slices.IsSortedFunc(del, wire.Key.Compare) {
		t.Fatalf("unsorted: upserts %v deletes %v", up, del)
	}
}

func TestDiffConvergesOnRandomSets(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		desired, inventory := randomSets(r.IntN(40), func(n int) int { return r.IntN(n) })
		checkDiff(t, desired, inventory)
	}
}

// randomSets draws both sets from a small universe of keys, uids and versions so that every
// case (missing, extra, uid change, version change, equal) is common.
func randomSets(n int, intn func(int) int) (desired, inventory map[wire.Key]Version) {
	desired, inventory = map[wire.Key]Version{}, map[wire.Key]Version{}
	for range n {
		k := wire.Key{Namespace: []string{"", "a", "b"}[intn(3)], Type: wire.TypePod, Name: fmt.Sprint("o", intn(8))}
		v := Version{UID: fmt.Sprint(intn(2)), ResourceVersion: fmt.Sprint(intn(3))}
		if intn(2) == 0 {
			desired[k] = v
		} else {
			inventory[k] = v
		}
	}
	return desired, inventory
}

func FuzzDiff(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Fuzz(func(t *testing.T, b []byte) {
		i := 0
		intn := func(n int) int {
			if i >= len(b) {
				return 0
			}
			i++
			return int(b[i-1]) % n
		}
		desired, inventory := randomSets(len(b)/5, intn)
		checkDiff(t, desired, inventory)
	})
}
