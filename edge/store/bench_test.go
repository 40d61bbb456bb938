package store

import (
	"context"
	"strconv"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

// Run with:
//
//	go test -run '^$' -bench . -benchtime 2s ./edge/store/
//
// The Normal variants use synchronous=NORMAL only to show what FULL costs; production
// always runs FULL.

func benchOutbox(b *testing.B, normal bool) *Outbox {
	opts := quietOptions()
	opts.syncNormal = normal
	opts.Outbox = OutboxLimits{MaxEntries: 1 << 30, MaxBytes: 1 << 40}
	return openT(b, b.TempDir(), opts).Outbox()
}

func benchEnqueue(b *testing.B, class Class, normal bool) {
	ob := benchOutbox(b, normal)
	ctx := context.Background()
	content := `{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}`
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = "default/podstatus/web-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := ob.Enqueue(ctx, testMsg(keys[i%len(keys)], content), class); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnqueueCoalescedFull(b *testing.B)   { benchEnqueue(b, Coalesced, false) }
func BenchmarkEnqueueFIFOFull(b *testing.B)        { benchEnqueue(b, FIFO, false) }
func BenchmarkEnqueueCoalescedNormal(b *testing.B) { benchEnqueue(b, Coalesced, true) }
func BenchmarkEnqueueFIFONormal(b *testing.B)      { benchEnqueue(b, FIFO, true) }

// BenchmarkCycle is the sender's loop for one message: enqueue, peek, ack.
func BenchmarkCycleFull(b *testing.B)   { benchCycle(b, false) }
func BenchmarkCycleNormal(b *testing.B) { benchCycle(b, true) }

func benchCycle(b *testing.B, normal bool) {
	ob := benchOutbox(b, normal)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ob.Enqueue(ctx, testMsg("default/event/web-1", `{"reason":"Started"}`), FIFO); err != nil {
			b.Fatal(err)
		}
		es, err := ob.Next(ctx, 1)
		if err != nil || len(es) != 1 {
			b.Fatal(len(es), err)
		}
		if ok, err := ob.Ack(ctx, es[0].ID); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkWindow32Full enqueues 32 messages, peeks them and acks them with one AckAll,
// as a pipelining sender would; ns/op is per window of 32.
func BenchmarkWindow32Full(b *testing.B) {
	ob := benchOutbox(b, false)
	ctx := context.Background()
	ids := make([]int64, 0, 32)
	for b.Loop() {
		for range 32 {
			if _, err := ob.Enqueue(ctx, testMsg("default/event/web-1", `{"reason":"Started"}`), FIFO); err != nil {
				b.Fatal(err)
			}
		}
		es, err := ob.Next(ctx, 32)
		if err != nil || len(es) != 32 {
			b.Fatal(len(es), err)
		}
		ids = ids[:0]
		for _, e := range es {
			ids = append(ids, e.ID)
		}
		if n, err := ob.AckAll(ctx, ids); err != nil || n != 32 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkApplyMessage is one real object change (each op changes a pod's content): the
// object write, the revision bump and the change-log row in one synchronous=FULL commit.
func BenchmarkApplyMessage(b *testing.B) {
	db := openT(b, b.TempDir(), quietOptions())
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := podMsg(wire.OpUpdate, "default/pod/web-"+strconv.Itoa(i%100), "u", strconv.Itoa(i))
		if err := db.ApplyMessage(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkList1000Pods lists one namespace's 1,000 pods among 1,000 configmaps and 1,000
// pods in another namespace, as MetaServer answers a LIST.
func BenchmarkList1000Pods(b *testing.B) {
	opts := quietOptions()
	opts.syncNormal = true // only the setup writes
	db := openT(b, b.TempDir(), opts)
	ctx := context.Background()
	spec := `{"containers":[{"name":"app","image":"registry.example/app:1.2.3"}]}`
	for i := range 1000 {
		for _, r := range []string{"default/pod/web-", "default/configmap/cfg-", "other/pod/web-"} {
			if err := db.ApplyMessage(ctx, podMsg(wire.OpInsert, r+strconv.Itoa(i), "u"+strconv.Itoa(i), spec)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		objs, _, err := db.List(ctx, wire.TypePod, "default")
		if err != nil || len(objs) != 1000 {
			b.Fatal(len(objs), err)
		}
	}
}
