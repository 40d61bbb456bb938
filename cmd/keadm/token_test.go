package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skerry-io/skerry/cloud/bootstrap"
	"github.com/skerry-io/skerry/cloud/ca"
)

var tokenRE = regexp.MustCompile(`^[0-9a-f]{64}\.[0-9a-f]{16}\.[0-9a-f]{48}\n$`)

func runKeadm(t *testing.T, client kubernetes.Interface, args ...string) (stdout, stderr string, gotPath string, err error) {
	t.Helper()
	cmd := newRootCommandWith(func(path string) (kubernetes.Interface, error) {
		gotPath = path
		return client, nil
	})
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errb.String(), gotPath, err
}

func TestGetTokenBeforeCloudcoreStarted(t *testing.T) {
	_, _, _, err := runKeadm(t, fake.NewClientset(), "gettoken", "--kubeconfig", "/kc")
	if err == nil || err.Error() != "no CA in kubeedge/skerry-ca: start cloudcore first" {
		t.Fatalf("got %v", err)
	}
}

func TestGetTokenPrintsOnlyTheTokenAndStoresBinding(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	authority, _, err := ca.EnsureCA(ctx, client, "kubeedge")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", "/from/env:/second")
	out, errOut, path, err := runKeadm(t, client, "gettoken", "--node", "edge-1", "--single-use", "--ttl", "2h", "--description", "lab rack 3")
	if err != nil {
		t.Fatal(err)
	}
	if path != "/from/env" {
		t.Errorf("kubeconfig %q, want the first file of $KUBECONFIG", path)
	}
	if !tokenRE.MatchString(out) {
		t.Fatalf("stdout %q is not exactly one token line", out)
	}
	tok, err := bootstrap.ParseToken(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	if tok.CAHash != bootstrap.CAHash(authority.Cert) {
		t.Fatal("token does not pin the CA in the Secret")
	}
	for _, want := range []string{tok.ID, "only for node edge-1", "single use", "keadm revoketoken " + tok.ID} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr %q lacks %q", errOut, want)
		}
	}
	rec, err := bootstrap.NewSecretStore(client, "kubeedge").Get(ctx, tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.NodeName != "edge-1" || !rec.SingleUse || rec.Description != "lab rack 3" || !rec.SecretMatches(tok.Secret) {
		t.Fatalf("stored record %+v", rec)
	}
	if d := time.Until(rec.Expires); d < 2*time.Hour-time.Minute || d > 2*time.Hour {
		t.Fatalf("expires in %v, want 2h", d)
	}

	// Defaults: any node, reusable, 24h; --kubeconfig wins over $KUBECONFIG.
	out, _, path, err = runKeadm(t, client, "gettoken", "--kubeconfig", "/flag")
	if err != nil || !tokenRE.MatchString(out) || path != "/flag" {
		t.Fatalf("out %q path %q: %v", out, path, err)
	}
	tok2, _ := bootstrap.ParseToken(strings.TrimSpace(out))
	rec, err = bootstrap.NewSecretStore(client, "kubeedge").Get(ctx, tok2.ID)
	if err != nil || rec.NodeName != "" || rec.SingleUse || time.Until(rec.Expires) < 23*time.Hour {
		t.Fatalf("default record %+v: %v", rec, err)
	}

	// Revoke by id, and by the whole token.
	if _, _, _, err := runKeadm(t, client, "revoketoken", tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := runKeadm(t, client, "revoketoken", tok2.String()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{tok.ID, tok2.ID} {
		if _, err := bootstrap.NewSecretStore(client, "kubeedge").Get(ctx, id); !errors.Is(err, bootstrap.ErrTokenNotFound) {
			t.Fatalf("token %s after revoke: %v", id, err)
		}
	}
}

func TestGetTokenRejectsBadFlags(t *testing.T) {
	client := fake.NewClientset()
	if _, _, err := ca.EnsureCA(context.Background(), client, "kubeedge"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := runKeadm(t, client, "gettoken", "--kubeconfig", "/kc", "--node", "Bad_Node"); err == nil {
		t.Fatal("invalid node name accepted")
	}
	if _, _, _, err := runKeadm(t, client, "gettoken", "--kubeconfig", "/kc", "--ttl", "0s"); err == nil || !strings.Contains(err.Error(), "--ttl") {
		t.Fatalf("zero ttl: %v", err)
	}
	if _, _, _, err := runKeadm(t, client, "revoketoken", "--kubeconfig", "/kc", "xyz"); err == nil {
		t.Fatal("malformed id accepted")
	}
}
