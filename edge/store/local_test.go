package store

import (
	"context"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

// TestLocalObjects: a local object is listed and watched, but the inventory leaves it out and
// cloud messages for its key change nothing, so a resync can neither delete nor replace it.
func TestLocalObjects(t *testing.T) {
	ctx := context.Background()
	db := openT(t, t.TempDir(), quietOptions())
	k := wire.Key{Namespace: "default", Type: wire.TypePod, Name: "static-edge-1"}

	// A cloud copy (the mirror pod) is there first: the local object replaces it.
	applyT(t, db, objMsg(wire.OpInsert, k.String(), "mirror-uid", "5"))
	w, err := db.Watch(ctx, db.Revision())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	local := []byte(`{"metadata":{"name":"static-edge-1","namespace":"default","uid":"local-uid"}}`)
	if err := db.PutLocal(ctx, k, local); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		typ EventType
		uid string
	}{{Deleted, "mirror-uid"}, {Added, "local-uid"}} {
		ev := <-w.Events()
		if ev.Type != want.typ || ev.Object.UID != want.uid {
			t.Fatalf("event %s %s, want %s %s", ev.Type, ev.Object.UID, want.typ, want.uid)
		}
	}
	wantInventory(t, db)

	applyT(t, db, objMsg(wire.OpUpdate, k.String(), "mirror-uid", "6"))
	applyT(t, db, objMsg(wire.OpDelete, k.String(), "", "7"))
	objs, _, err := db.List(ctx, wire.TypePod, "")
	if err != nil || len(objs) != 1 || objs[0].UID != "local-uid" {
		t.Fatalf("List = %+v, %v; want only the local pod", objs, err)
	}
	locals, err := db.ListLocal(ctx, wire.TypePod)
	if err != nil || len(locals) != 1 || locals[0].Key != k {
		t.Fatalf("ListLocal = %+v, %v", locals, err)
	}

	if err := db.DeleteLocal(ctx, k); err != nil {
		t.Fatal(err)
	}
	if ev := <-w.Events(); ev.Type != Deleted || ev.Object.UID != "local-uid" {
		t.Fatalf("event %s %s, want the local pod deleted", ev.Type, ev.Object.UID)
	}
	// DeleteLocal leaves a cloud object alone.
	applyT(t, db, objMsg(wire.OpInsert, k.String(), "mirror-2", "8"))
	if err := db.DeleteLocal(ctx, k); err != nil {
		t.Fatal(err)
	}
	wantInventory(t, db, wire.InventoryItem{Key: k.String(), UID: "mirror-2", ResourceVersion: "8"})
	if locals, err := db.ListLocal(ctx, wire.TypePod); err != nil || len(locals) != 0 {
		t.Fatalf("ListLocal = %+v, %v; want none", locals, err)
	}
}
