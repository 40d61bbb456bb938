package objects

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

func TestReadsWhatTheCloudSent(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir(), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for res, content := range map[string]string{
		"ns/configmap/cfg":           `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg","uid":"u1","resourceVersion":"1"},"data":{"a":"b"}}`,
		"ns/secret/s":                `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","uid":"u2","resourceVersion":"1"},"data":{"k":"dg=="}}`,
		"ns/serviceaccounttoken/web": `{"apiVersion":"edge.skerry.io/v1","kind":"PodTokens","metadata":{"name":"web","uid":"u3","resourceVersion":"x"},"serviceAccountName":"default","tokens":[{"audience":"","expirationSeconds":3607,"path":"token","token":"jwt"}]}`,
	} {
		m := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: res}, json.RawMessage(content))
		if err := db.ApplyMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	s := Store{DB: db}
	if cm, ok, err := s.ConfigMap(ctx, "ns", "cfg"); err != nil || !ok || cm.Data["a"] != "b" {
		t.Errorf("configmap %v %v %v", cm, ok, err)
	}
	if sec, ok, err := s.Secret(ctx, "ns", "s"); err != nil || !ok || string(sec.Data["k"]) != "v" {
		t.Errorf("secret %v %v %v", sec, ok, err)
	}
	if tok, ok, err := s.PodTokens(ctx, "ns", "web"); err != nil || !ok || len(tok.Tokens) != 1 || tok.Tokens[0].Token != "jwt" {
		t.Errorf("tokens %v %v %v", tok, ok, err)
	}
	if _, ok, err := s.Secret(ctx, "ns", "absent"); ok || err != nil {
		t.Errorf("absent secret: %v %v", ok, err)
	}
}
