package queue

import (
	"context"
	"fmt"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

// BenchmarkCycle is one object update through the queue: Upsert, Next, Ack, on the real
// clock, cycling over 1024 keys. Messages are built beforehand: building them is the
// caller's cost.
func BenchmarkCycle(b *testing.B) {
	const n = 1024
	q := New(Options{})
	defer q.Close()
	keys := make([]wire.Key, n)
	msgs := make([]*wire.Message, n)
	for i := range n {
		keys[i] = pod(fmt.Sprint("p", i))
		msgs[i] = msg(fmt.Sprint("m", i))
	}
	ctx := context.Background()
	v := Version{UID: "u", ResourceVersion: "1"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := i % n
		i++
		if err := q.Upsert(keys[j], v, msgs[j]); err != nil {
			b.Fatal(err)
		}
		it, err := q.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if !q.Ack(it.Msg.Header.ID) {
			b.Fatal("ack refused")
		}
	}
}

// BenchmarkDiff10k is the resync of a node holding 10,000 objects of which 10% changed,
// 1% are gone and 1% are new.
func BenchmarkDiff10k(b *testing.B) {
	const n = 10000
	desired := make(map[wire.Key]Version, n)
	inventory := make(map[wire.Key]Version, n)
	for i := range n {
		k := wire.Key{Namespace: fmt.Sprint("ns", i%50), Type: wire.TypePod, Name: fmt.Sprint("pod-", i)}
		v := Version{UID: fmt.Sprint("uid-", i), ResourceVersion: fmt.Sprint(1000 + i)}
		switch {
		case i%100 == 0: // new
			desired[k] = v
		case i%100 == 1: // gone
			inventory[k] = v
		case i%10 == 2: // changed
			desired[k] = v
			v.ResourceVersion += "0"
			inventory[k] = v
		default:
			desired[k], inventory[k] = v, v
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		up, del := Diff(desired, inventory)
		if len(up) != 1100 || len(del) != 100 {
			b.Fatalf("%d upserts, %d deletes", len(up), len(del))
		}
	}
}
