//go:build e2e

package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/test/e2e/framework"
)

// Ports away from the defaults, so the test does not collide with a cloudcore a developer runs.
const (
	hubWS     = "127.0.0.1:20000"
	hubQUIC   = "127.0.0.1:20001"
	bootstrap = "127.0.0.1:20002"
	admin     = "127.0.0.1:20006"
)

// TestEdgeNodesJoinWithTokens drives the real binaries: cloudcore against the local
// kube-apiserver, keadm gettoken, and edgecore joining over WebSocket and QUIC; then both sides
// restart and the sessions come back; misused tokens are refused with a message that says why.
func TestEdgeNodesJoinWithTokens(t *testing.T) {
	dir := t.TempDir()
	cloudCfg := writeFile(t, dir, "cloudcore.yaml", fmt.Sprintf(`apiVersion: cloudcore.config.skerry.io/v1alpha1
kind: CloudCore
kubeAPI:
  kubeconfig: %s
hub:
  websocket: {enable: true, address: %q}
  quic: {enable: true, address: %q}
  keepaliveTimeout: 30s
bootstrap:
  address: %q
  advertiseAddresses: [127.0.0.1]
admin:
  address: %q
admission:
  enable: false
`, env.Kubeconfig, hubWS, hubQUIC, bootstrap, admin))
	// A kubeedge namespace left terminating by an earlier run must finish first, or cloudcore
	// could not write its Secrets into it.
	framework.Eventually(t, 2*time.Minute, "namespace kubeedge not terminating", func(ctx context.Context) (bool, error) {
		ns, err := env.Kube.CoreV1().Namespaces().Get(ctx, "kubeedge", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && ns.DeletionTimestamp == nil, err
	})
	cloud := env.Start(t, "cloudcore", "--config", cloudCfg)
	waitReady(t, cloud)
	t.Cleanup(func() {
		for _, n := range []string{"edge-ws", "edge-quic"} {
			_ = env.Kube.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{})
			_ = env.Kube.CoordinationV1().Leases("kube-node-lease").Delete(context.Background(), n, metav1.DeleteOptions{})
		}
	})

	// A token bound to one node, over WebSocket.
	tokenWS := keadm(t, "gettoken", "--kubeconfig", env.Kubeconfig, "--node", "edge-ws")
	edgeWS := startEdge(t, dir, "edge-ws", "websocket", hubWS, tokenWS)
	waitConnected(t, "edge-ws")
	checkNodeCertificate(t, filepath.Join(dir, "edge-ws"), "edge-ws")

	// A single-use token, over QUIC.
	tokenQUIC := keadm(t, "gettoken", "--kubeconfig", env.Kubeconfig, "--single-use")
	startEdge(t, dir, "edge-quic", "quic", hubQUIC, tokenQUIC)
	waitConnected(t, "edge-quic")

	// Misused tokens: a used single-use token, a token bound to another node, a revoked token.
	expectJoinRefused(t, dir, "edge-again", tokenQUIC)
	expectJoinRefused(t, dir, "edge-other", tokenWS)
	revoked := keadm(t, "gettoken", "--kubeconfig", env.Kubeconfig)
	keadm(t, "revoketoken", "--kubeconfig", env.Kubeconfig, revoked)
	expectJoinRefused(t, dir, "edge-revoked", revoked)

	// cloudcore restarts: both edges come back by themselves.
	cloud.Stop(t)
	cloud = env.Start(t, "cloudcore", "--config", cloudCfg)
	waitReady(t, cloud)
	waitConnected(t, "edge-ws", "edge-quic")

	// edgecore restarts from its stored certificate, without a token.
	edgeWS.Stop(t)
	startEdge(t, dir, "edge-ws", "websocket", hubWS, "")
	waitConnected(t, "edge-ws", "edge-quic")

	// Both registered their Node, over either transport.
	for _, n := range []string{"edge-ws", "edge-quic"} {
		framework.Eventually(t, 60*time.Second, "node "+n+" registered", func(ctx context.Context) (bool, error) {
			node, err := env.Kube.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			_, edge := node.Labels["node-role.kubernetes.io/edge"]
			return edge, nil
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func startEdge(t *testing.T, dir, node, protocol, server, token string) *framework.Process {
	t.Helper()
	cfg := fmt.Sprintf(`apiVersion: edgecore.config.skerry.io/v1alpha1
kind: EdgeCore
nodeName: %s
dataDir: %s
metaServer:
  address: 127.0.0.1:0
edged:
  enable: false
eventBus:
  enable: false   # two edgecores here: the broker port is node-wide
deviceTwin:
  enable: false
hub:
  server: %q
  protocol: %s
  bootstrapServer: %q
  keepaliveInterval: 2s
`, node, filepath.Join(dir, node), server, protocol, bootstrap)
	if token != "" {
		cfg += fmt.Sprintf("  token: %q\n", token)
	}
	return env.Start(t, "edgecore", "--config", writeFile(t, dir, node+".yaml", cfg))
}

func keadm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runBinary(t, "keadm", args...)
	if err != nil {
		t.Fatalf("keadm %s: %v\n%s", args[0], err, out)
	}
	return strings.TrimSpace(out)
}

// runBinary runs one of our binaries to completion and returns its stdout.
func runBinary(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	p := env.Start(t, name, args...)
	framework.Eventually(t, 30*time.Second, name+" to finish", func(context.Context) (bool, error) {
		done, _ := p.Exited()
		return done, nil
	})
	_, err := p.Exited()
	return p.Stdout(), err
}

func expectJoinRefused(t *testing.T, dir, node, token string) {
	t.Helper()
	p := startEdge(t, dir, node, "websocket", hubWS, token)
	framework.Eventually(t, 30*time.Second, "edgecore "+node+" to give up", func(context.Context) (bool, error) {
		done, _ := p.Exited()
		return done, nil
	})
	if _, err := p.Exited(); err == nil {
		t.Fatalf("edgecore %s joined with a token it should not be able to use:\n%s", node, p.Output())
	}
	if out := p.Output(); !strings.Contains(out, "token") {
		t.Errorf("edgecore %s was refused without a message about the token:\n%s", node, out)
	}
	if slices.Contains(connectedNodes(t), node) {
		t.Errorf("refused node %s is connected", node)
	}
}

func waitReady(t *testing.T, cloud *framework.Process) {
	t.Helper()
	framework.Eventually(t, 60*time.Second, "cloudcore /readyz", func(ctx context.Context) (bool, error) {
		if done, err := cloud.Exited(); done {
			t.Fatalf("cloudcore exited: %v\n%s", err, cloud.Output())
		}
		body, err := get(ctx, "/readyz")
		return err == nil && strings.TrimSpace(body) == "ok", err
	})
}

func waitConnected(t *testing.T, nodes ...string) {
	t.Helper()
	framework.Eventually(t, 90*time.Second, fmt.Sprintf("nodes %v connected to cloudcore", nodes), func(context.Context) (bool, error) {
		got := connectedNodes(t)
		for _, n := range nodes {
			if !slices.Contains(got, n) {
				return false, fmt.Errorf("connected: %v", got)
			}
		}
		return true, nil
	})
}

func connectedNodes(t *testing.T) []string {
	t.Helper()
	body, err := get(context.Background(), "/debug/nodes")
	if err != nil {
		return nil
	}
	var nodes []string
	if err := json.Unmarshal([]byte(body), &nodes); err != nil {
		t.Fatalf("/debug/nodes: %v: %q", err, body)
	}
	return nodes
}

func get(ctx context.Context, path string) (string, error) {
	return httpGet(ctx, "http://"+admin+path)
}

// checkNodeCertificate: the key is private to root and the certificate names the node.
func checkNodeCertificate(t *testing.T, dataDir, node string) {
	t.Helper()
	st, err := os.Stat(filepath.Join(dataDir, "certs", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("node.key mode %v, want 0600", st.Mode().Perm())
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "certs", "node.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("node.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "system:node:"+node || !slices.Equal(cert.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("certificate subject %v, want CN=system:node:%s, O=system:nodes", cert.Subject, node)
	}
}
