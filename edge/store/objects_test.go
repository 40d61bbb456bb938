package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

func objMsg(op wire.Operation, resource, uid, rv string) *wire.Message {
	content := json.RawMessage(fmt.Sprintf(`{"metadata":{"name":"x","uid":%q,"resourceVersion":%q},"spec":{}}`, uid, rv))
	return wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: op, Resource: resource}, content)
}

func inventory(t *testing.T, db *DB) []wire.InventoryItem {
	t.Helper()
	inv, err := db.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return inv.Items
}

func wantInventory(t *testing.T, db *DB, want ...wire.InventoryItem) {
	t.Helper()
	if want == nil {
		want = []wire.InventoryItem{}
	}
	if got := inventory(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("inventory:\n got %+v\nwant %+v", got, want)
	}
}

func applyT(t *testing.T, db *DB, m *wire.Message) {
	t.Helper()
	if err := db.ApplyMessage(context.Background(), m); err != nil {
		t.Fatalf("ApplyMessage(%s %s): %v", m.Route.Operation, m.Route.Resource, err)
	}
}

func TestApplyInsertUpdateDelete(t *testing.T) {
	ctx := context.Background()
	db := openT(t, t.TempDir(), quietOptions())
	wantInventory(t, db)

	applyT(t, db, objMsg(wire.OpInsert, "default/pod/web-1", "u1", "10"))
	applyT(t, db, objMsg(wire.OpInsert, "default/configmap/cfg", "u2", "11"))
	wantInventory(t, db,
		wire.InventoryItem{Key: "default/configmap/cfg", UID: "u2", ResourceVersion: "11"},
		wire.InventoryItem{Key: "default/pod/web-1", UID: "u1", ResourceVersion: "10"})

	up := objMsg(wire.OpUpdate, "default/pod/web-1", "u1", "12")
	applyT(t, db, up)
	applyT(t, db, objMsg(wire.OpPatch, "default/configmap/cfg", "u2", "13"))
	wantInventory(t, db,
		wire.InventoryItem{Key: "default/configmap/cfg", UID: "u2", ResourceVersion: "13"},
		wire.InventoryItem{Key: "default/pod/web-1", UID: "u1", ResourceVersion: "12"})
	obj, ok, err := db.Get(ctx, wire.Key{Namespace: "default", Type: wire.TypePod, Name: "web-1"})
	if err != nil || !ok || string(obj.Content) != string(up.Content) {
		t.Fatalf("Get = %+v, %v, %v; want the update's content", obj, ok, err)
	}

	applyT(t, db, objMsg(wire.OpDelete, "default/pod/web-1", "u1", "14"))
	wantInventory(t, db, wire.InventoryItem{Key: "default/configmap/cfg", UID: "u2", ResourceVersion: "13"})
	// Deletes are idempotent: the cloud may resend one.
	applyT(t, db, objMsg(wire.OpDelete, "default/pod/web-1", "u1", "14"))
	// A delete without a uid removes whatever the key holds.
	del := wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: wire.OpDelete, Resource: "default/configmap/cfg"}, json.RawMessage("null"))
	applyT(t, db, del)
	wantInventory(t, db)
	if _, ok, _ := db.Get(ctx, wire.Key{Namespace: "default", Type: wire.TypePod, Name: "web-1"}); ok {
		t.Fatal("deleted object still readable")
	}
}

func TestResourceVersionFallsBackToHeader(t *testing.T) {
	db := openT(t, t.TempDir(), quietOptions())
	m := wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: wire.OpInsert, Resource: "null/node/edge-1"},
		json.RawMessage(`{"metadata":{"uid":"n1"}}`))
	m.Header.ResourceVersion = "77"
	applyT(t, db, m)
	wantInventory(t, db, wire.InventoryItem{Key: "null/node/edge-1", UID: "n1", ResourceVersion: "77"})
}

func TestDeleteOfAnotherIncarnationIsIgnored(t *testing.T) {
	db := openT(t, t.TempDir(), quietOptions())
	applyT(t, db, objMsg(wire.OpInsert, "default/pod/web-1", "new-uid", "20"))
	// A delete for the pod that had this name before it was re-created.
	applyT(t, db, objMsg(wire.OpDelete, "default/pod/web-1", "old-uid", "19"))
	wantInventory(t, db, wire.InventoryItem{Key: "default/pod/web-1", UID: "new-uid", ResourceVersion: "20"})
}

func TestObjectsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, quietOptions())
	applyT(t, db, objMsg(wire.OpInsert, "default/secret/s", "u1", "5"))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openT(t, dir, quietOptions())
	wantInventory(t, db, wire.InventoryItem{Key: "default/secret/s", UID: "u1", ResourceVersion: "5"})
}

func TestBadMessagesChangeNothing(t *testing.T) {
	db := openT(t, t.TempDir(), quietOptions())
	applyT(t, db, objMsg(wire.OpInsert, "default/pod/web-1", "u1", "1"))
	before := inventory(t, db)

	long := strings.Repeat("u", wire.MaxIDLength+1)
	cases := map[string]struct {
		m    *wire.Message
		want string
	}{
		"query":           {objMsg(wire.OpQuery, "default/pod/web-1", "u1", "2"), "unsupported"},
		"upload":          {objMsg(wire.OpUpload, "default/pod/web-1", "u1", "2"), "unsupported"},
		"no name":         {objMsg(wire.OpInsert, "default/pod", "u1", "2"), "names no object"},
		"cloud form":      {objMsg(wire.OpInsert, "node/edge-1/default/pod/web-1", "u1", "2"), "store: objects"},
		"bad resource":    {objMsg(wire.OpUpdate, "Default/pod/web-1", "u1", "2"), "store: objects"},
		"long uid":        {objMsg(wire.OpUpdate, "default/pod/web-1", long, "2"), "longer than"},
		"not an object":   {wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: "default/pod/web-1"}, json.RawMessage(`"x"`)), "JSON object"},
		"null content":    {wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: wire.OpInsert, Resource: "default/pod/web-2"}, json.RawMessage(`null`)), "JSON object"},
		"bad metadata":    {wire.NewMessage(wire.Route{Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: "default/pod/web-1"}, json.RawMessage(`{"metadata":{"uid":5}}`)), "metadata"},
		"delete bad name": {objMsg(wire.OpDelete, "default/pod/", "u1", "2"), "store: objects"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := db.ApplyMessage(context.Background(), tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if tc.want == "unsupported" && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("%v does not wrap ErrUnsupported", err)
			}
			if got := inventory(t, db); !reflect.DeepEqual(got, before) {
				t.Fatalf("store changed: %+v, want %+v", got, before)
			}
		})
	}
}

func TestObjectsAfterClose(t *testing.T) {
	db := openT(t, t.TempDir(), quietOptions())
	_ = db.Close()
	if err := db.ApplyMessage(context.Background(), objMsg(wire.OpInsert, "default/pod/a", "u", "1")); !errors.Is(err, ErrClosed) {
		t.Fatalf("ApplyMessage after Close = %v, want ErrClosed", err)
	}
	if _, err := db.Inventory(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Inventory after Close = %v, want ErrClosed", err)
	}
}
