//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/skerry-io/skerry/test/e2e/framework"
)

// TestKubeVersionIsPinned: kubectl and the API server are both the pinned upstream release,
// built from source with the right version stamp.
func TestKubeVersionIsPinned(t *testing.T) {
	out, err := env.RunKubectl(context.Background(), "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Client struct{ GitVersion string } `json:"clientVersion"`
		Server struct{ GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("kubectl version -o json: %v\n%s", err, out)
	}
	if v.Client.GitVersion != framework.KubeVersion || v.Server.GitVersion != framework.KubeVersion {
		t.Fatalf("client %q, server %q: want %s for both", v.Client.GitVersion, v.Server.GitVersion, framework.KubeVersion)
	}
}

// TestNodeAuthorizerIsOn: the API server authorizes with Node,RBAC, which later issues rely on to
// scope what an edge node may do. An unknown node identity may not read secrets.
func TestNodeAuthorizerIsOn(t *testing.T) {
	out, err := env.RunKubectl(context.Background(), "auth", "can-i", "list", "secrets", "--all-namespaces",
		"--as", "system:node:nobody", "--as-group", "system:nodes")
	// The Node authorizer answers "no - <its reason>"; RBAC alone would answer a plain "no".
	if err == nil || !strings.HasPrefix(out, "no") {
		t.Fatalf("a node may list every secret (kubectl auth can-i: %q, %v)", out, err)
	}
}
