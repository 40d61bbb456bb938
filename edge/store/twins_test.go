package store

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

func deviceKey(name string) wire.Key {
	return wire.Key{Namespace: "default", Type: wire.TypeDevice, Name: name}
}

func TestTwinsRoundTripAcrossReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openT(t, dir, quietOptions())
	want := DeviceTwin{
		Device: deviceKey("thermo-1"), UID: "u1", State: "online", LastOnlineTime: "2026-11-22T02:00:00Z", Dirty: 7,
		Properties: []TwinProperty{
			{
				Name: "temperature", Type: "FLOAT",
				Expected:        &TwinValue{Value: "20", Metadata: map[string]string{"timestamp": "1"}},
				CloudDesired:    &TwinValue{Value: "20"},
				Actual:          &TwinValue{Value: "21.5", Metadata: map[string]string{"timestamp": "2", "type": "float"}},
				ObservedDesired: &TwinValue{Value: "20"},
				ExpectedVersion: TwinVersion{Cloud: 1, Edge: 2}, ActualVersion: TwinVersion{Edge: 3},
			},
			{Name: "mode", Type: "STRING", Optional: true},
		},
	}
	if err := db.PutTwin(ctx, want); err != nil {
		t.Fatalf("PutTwin: %v", err)
	}
	if err := db.PutTwin(ctx, DeviceTwin{Device: deviceKey("other"), UID: "u2"}); err != nil {
		t.Fatalf("PutTwin: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openT(t, dir, quietOptions())
	got, err := db.Twins(ctx)
	if err != nil {
		t.Fatalf("Twins: %v", err)
	}
	// Properties come back sorted by name.
	want.Properties[0], want.Properties[1] = want.Properties[1], want.Properties[0]
	if len(got) != 2 || !reflect.DeepEqual(got[1], want) {
		t.Fatalf("Twins = %+v\nwant [other, %+v]", got, want)
	}
	if got[0].Device != deviceKey("other") || got[0].Properties != nil {
		t.Errorf("other twin = %+v", got[0])
	}
}

func TestPutTwinReplacesProperties(t *testing.T) {
	ctx := context.Background()
	db := openT(t, t.TempDir(), quietOptions())
	k := deviceKey("d")
	if err := db.PutTwin(ctx, DeviceTwin{Device: k, Properties: []TwinProperty{{Name: "a"}, {Name: "b"}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutTwin(ctx, DeviceTwin{Device: k, Properties: []TwinProperty{{Name: "b", Type: "INT"}}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Twins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0].Properties, []TwinProperty{{Name: "b", Type: "INT"}}) {
		t.Fatalf("Twins = %+v", got)
	}
}

func TestPutTwinRefusesBadInputWhole(t *testing.T) {
	ctx := context.Background()
	db := openT(t, t.TempDir(), quietOptions())
	for name, tw := range map[string]DeviceTwin{
		"not a device": {Device: wire.Key{Namespace: "default", Type: wire.TypePod, Name: "p"}},
		"no namespace": {Device: wire.Key{Type: wire.TypeDevice, Name: "d"}},
		"dup property": {Device: deviceKey("d"), Properties: []TwinProperty{{Name: "a"}, {Name: "a"}}},
		"empty name":   {Device: deviceKey("d"), Properties: []TwinProperty{{Name: ""}}},
	} {
		if err := db.PutTwin(ctx, tw); err == nil {
			t.Errorf("%s: PutTwin succeeded", name)
		}
	}
	got, err := db.Twins(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("Twins = %+v, %v; want nothing stored", got, err)
	}
}

func TestDeleteTwinCascades(t *testing.T) {
	ctx := context.Background()
	db := openT(t, t.TempDir(), quietOptions())
	k := deviceKey("d")
	if err := db.PutTwin(ctx, DeviceTwin{Device: k, Properties: []TwinProperty{{Name: "a"}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteTwin(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteTwin(ctx, k); err != nil {
		t.Fatalf("second DeleteTwin: %v", err)
	}
	var n int
	if err := db.read.QueryRow(`SELECT count(*) FROM twins`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("twins rows = %d, %v; want 0", n, err)
	}
}

func TestClearTwinDirtyOnlyForItsGeneration(t *testing.T) {
	ctx := context.Background()
	db := openT(t, t.TempDir(), quietOptions())
	k := deviceKey("d")
	if err := db.PutTwin(ctx, DeviceTwin{Device: k, Dirty: 5}); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.ClearTwinDirty(ctx, k, 4); err != nil || ok {
		t.Fatalf("ClearTwinDirty(older gen) = %v, %v; want false", ok, err)
	}
	if ok, err := db.ClearTwinDirty(ctx, k, 5); err != nil || !ok {
		t.Fatalf("ClearTwinDirty(gen) = %v, %v; want true", ok, err)
	}
	got, _ := db.Twins(ctx)
	if got[0].Dirty != 0 {
		t.Errorf("Dirty = %d after clear", got[0].Dirty)
	}
}

func TestTwinsCorruptValue(t *testing.T) {
	ctx := context.Background()
	db := openT(t, t.TempDir(), quietOptions())
	if err := db.PutTwin(ctx, DeviceTwin{Device: deviceKey("d"), Properties: []TwinProperty{{Name: "a"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.Exec(`UPDATE twins SET expected = 'not json'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Twins(ctx); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Twins = %v, want ErrCorrupt", err)
	}
}

func TestTwinsAfterClose(t *testing.T) {
	db := openT(t, t.TempDir(), quietOptions())
	_ = db.Close()
	if _, err := db.Twins(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Twins after Close = %v", err)
	}
	if err := db.PutTwin(context.Background(), DeviceTwin{Device: deviceKey("d")}); !errors.Is(err, ErrClosed) {
		t.Errorf("PutTwin after Close = %v", err)
	}
}
