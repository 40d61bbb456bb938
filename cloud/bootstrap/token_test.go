package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skerry-io/skerry/pkg/pki"
)

func newTestCA(t testing.TB) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "test-ca"})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestTokenRoundTrip(t *testing.T) {
	ca := newTestCA(t)
	store := NewSecretStore(fake.NewClientset(), "")
	tok, err := CreateToken(context.Background(), store, ca.Cert, TokenOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := tok.String()
	hash, bearer, _ := strings.Cut(s, ".")
	if len(hash) != 64 || strings.Count(bearer, ".") != 1 || len(tok.Secret)*4 < 128 {
		t.Fatalf("unexpected token shape %q", s)
	}
	got, err := ParseToken(s)
	if err != nil || got != tok {
		t.Fatalf("ParseToken(%q) = %+v, %v; want %+v", s, got, err, tok)
	}
	if got.CAHash != CAHash(ca.Cert) {
		t.Fatal("token does not pin the CA")
	}
	other, _ := CreateToken(context.Background(), store, ca.Cert, TokenOptions{}, time.Now())
	if other.ID == tok.ID || other.Secret == tok.Secret {
		t.Fatal("two tokens share id or secret")
	}
}

func TestParseTokenRejects(t *testing.T) {
	valid := strings.Repeat("a", 64) + "." + strings.Repeat("b", 16) + "." + strings.Repeat("c", 48)
	if _, err := ParseToken(valid); err != nil {
		t.Fatalf("valid token refused: %v", err)
	}
	for _, s := range []string{
		"",
		".",
		strings.Repeat("a", 64),
		strings.ToUpper(valid),
		strings.Repeat("a", 63) + "." + strings.Repeat("b", 16) + "." + strings.Repeat("c", 48),
		strings.Repeat("a", 64) + "." + strings.Repeat("b", 16) + "." + strings.Repeat("c", 47),
		strings.Repeat("a", 64) + "." + strings.Repeat("b", 16) + "." + strings.Repeat("c", 48) + ".x",
		strings.Repeat("a", 64) + ".eyJhbGciOiJIUzI1NiJ9.e30.sig", // a KubeEdge JWT
	} {
		if _, err := ParseToken(s); !errors.Is(err, ErrTokenInvalid) {
			t.Errorf("ParseToken(%q) err = %v, want ErrTokenInvalid", s, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(strings.Repeat("a", 64) + "." + strings.Repeat("b", 16) + "." + strings.Repeat("c", 48))
	f.Add(strings.Repeat("0", 64) + ".eyJhbGciOiJIUzI1NiJ9.e30.sig")
	f.Add("..")
	f.Add("")
	f.Add(strings.Repeat("f", 64) + "." + strings.Repeat("1", 16) + ".")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("error %v does not wrap ErrTokenInvalid", err)
			}
			return
		}
		// Whatever parses prints back to the same text: there is one spelling per token.
		if tok.String() != s {
			t.Fatalf("round trip %q -> %q", s, tok.String())
		}
	})
}

func TestSecretStoreLayout(t *testing.T) {
	ca := newTestCA(t)
	client := fake.NewClientset()
	store := NewSecretStore(client, "")
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tok, err := CreateToken(context.Background(), store, ca.Cert, TokenOptions{NodeName: "edge-1", SingleUse: true, TTL: time.Hour, Description: "lab"}, now)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := client.CoreV1().Secrets("kubeedge").Get(context.Background(), "join-token-"+tok.ID, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != TokenSecretType {
		t.Errorf("type %q", sec.Type)
	}
	for k, v := range sec.Data {
		if bytes.Contains(v, []byte(tok.Secret)) {
			t.Errorf("secret stored in clear under %q", k)
		}
	}
	rec, err := store.Get(context.Background(), tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Expires.Equal(now.Add(time.Hour)) || rec.NodeName != "edge-1" || !rec.SingleUse || rec.Description != "lab" {
		t.Errorf("record %+v", rec)
	}
	if !rec.SecretMatches(tok.Secret) || rec.SecretMatches(strings.Repeat("0", 48)) {
		t.Error("SecretMatches wrong")
	}

	if err := store.Revoke(context.Background(), tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(context.Background(), tok.ID); !errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("after revoke: %v", err)
	}
	if err := store.Revoke(context.Background(), tok.ID); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
}

func TestSecretStoreRefusesForeignSecret(t *testing.T) {
	client := fake.NewClientset()
	store := NewSecretStore(client, "")
	ca := newTestCA(t)
	tok, _ := CreateToken(context.Background(), store, ca.Cert, TokenOptions{}, time.Now())
	sec, _ := client.CoreV1().Secrets("kubeedge").Get(context.Background(), "join-token-"+tok.ID, metav1.GetOptions{})
	sec.Type = "Opaque"
	if _, err := client.CoreV1().Secrets("kubeedge").Update(context.Background(), sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(context.Background(), tok.ID); err == nil || errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("Opaque secret accepted as token: %v", err)
	}
}

func TestConsumeOnce(t *testing.T) {
	ca := newTestCA(t)
	store := NewSecretStore(fake.NewClientset(), "")
	tok, _ := CreateToken(context.Background(), store, ca.Cert, TokenOptions{SingleUse: true}, time.Now())

	// Both callers read the record before either consumes it, as two racing joins would.
	const n = 8
	recs := make([]*TokenRecord, n)
	for i := range recs {
		var err error
		if recs[i], err = store.Get(context.Background(), tok.ID); err != nil {
			t.Fatal(err)
		}
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for _, rec := range recs {
		wg.Go(func() {
			err := store.Consume(context.Background(), rec)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, ErrTokenNotFound):
				t.Errorf("Consume: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d consumers won, want exactly 1", wins.Load())
	}
}

func TestPrune(t *testing.T) {
	ca := newTestCA(t)
	store := NewSecretStore(fake.NewClientset(), "")
	ctx := context.Background()
	now := time.Now()
	old, _ := CreateToken(ctx, store, ca.Cert, TokenOptions{TTL: time.Hour}, now.Add(-2*time.Hour))
	fresh, _ := CreateToken(ctx, store, ca.Cert, TokenOptions{}, now)
	n, err := store.Prune(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if _, err := store.Get(ctx, old.ID); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("expired token kept: %v", err)
	}
	if _, err := store.Get(ctx, fresh.ID); err != nil {
		t.Errorf("valid token pruned: %v", err)
	}
}
