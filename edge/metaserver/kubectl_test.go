package metaserver

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skerry-io/skerry/pkg/wire"
)

// kubectlPath finds the kubectl the repository builds, or skips the test.
func kubectlPath(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs("../../_output/kube/v1.36.3/kubectl"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		if m, _ := filepath.Glob(filepath.Join(home, ".cache/skerry/kube/*/kubectl")); len(m) > 0 {
			return m[0]
		}
	}
	t.Skip("kubectl not built (hack/local-up.sh builds it)")
	return ""
}

// kubectl runs kubectl against the metaserver with a private cache and no kubeconfig.
func (e *testEnv) kubectl(ctx context.Context, args ...string) *exec.Cmd {
	dir := e.t.TempDir()
	full := append([]string{"--server", e.url, "--cache-dir", filepath.Join(dir, "cache"), "--request-timeout", "20s"}, args...)
	cmd := exec.CommandContext(ctx, kubectlPath(e.t), full...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "KUBECONFIG="+filepath.Join(dir, "kubeconfig"))
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (e *testEnv) kubectlOut(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := e.kubectl(ctx, args...).CombinedOutput()
	return string(out), err
}

func TestKubectl(t *testing.T) {
	kubectlPath(t)
	e := newEnv(t, nil)
	seedPods(e)
	e.store.put(wire.Key{Namespace: "ns", Type: wire.TypeConfigMap, Name: "x1"}, configMap("ns", "x1", map[string]string{"app": "x"}))
	e.store.put(wire.Key{Namespace: "ns", Type: wire.TypeConfigMap, Name: "y1"}, configMap("ns", "y1", map[string]string{"app": "y"}))

	out, err := e.kubectlOut("get", "pods")
	if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, "web-1") || !strings.Contains(out, "Running") || strings.Contains(out, "dns") {
		t.Fatalf("get pods: %v\n%s", err, out)
	}
	t.Logf("kubectl get pods:\n%s", out)

	out, err = e.kubectlOut("get", "po", "-A", "-o", "wide")
	if err != nil || !strings.Contains(out, "kube-system") || !strings.Contains(out, "10.88.0.5") {
		t.Fatalf("get pods -A -o wide: %v\n%s", err, out)
	}

	out, err = e.kubectlOut("get", "pods", "-o", "json")
	if err != nil {
		t.Fatalf("get pods -o json: %v\n%s", err, out)
	}
	var l struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Items) != 2 {
		t.Fatalf("get pods -o json: %v\n%s", err, out)
	}

	out, err = e.kubectlOut("get", "cm", "-n", "ns", "-l", "app=x")
	if err != nil || !strings.Contains(out, "x1") || strings.Contains(out, "y1") {
		t.Fatalf("get cm -l: %v\n%s", err, out)
	}

	out, err = e.kubectlOut("get", "pods", "web-1", "-o", "jsonpath={.status.phase}")
	if err != nil || out != "Running" {
		t.Fatalf("get pod jsonpath: %v\n%s", err, out)
	}

	out, err = e.kubectlOut("get", "pods", "nope")
	if err == nil || !strings.Contains(out, `pods "nope" not found`) {
		t.Fatalf("get missing pod: %v\n%s", err, out)
	}

	out, err = e.kubectlOut("get", "pods", "--field-selector", "spec.bogus=1")
	if err == nil || !strings.Contains(out, "field label not supported: spec.bogus") {
		t.Fatalf("bad field selector: %v\n%s", err, out)
	}
	out, err = e.kubectlOut("get", "pods", "--field-selector", "status.phase=Pending")
	if err != nil || !strings.Contains(out, "web-2") || strings.Contains(out, "web-1") {
		t.Fatalf("field selector: %v\n%s", err, out)
	}

	out, err = e.kubectlOut("delete", "pod", "web-1")
	if err == nil || !strings.Contains(out, "MethodNotAllowed") {
		t.Fatalf("delete: %v\n%s", err, out)
	}

	out, err = e.kubectlOut("api-resources")
	if err != nil || !strings.Contains(out, "endpointslices") || !strings.Contains(out, "devices.kubeedge.io") {
		t.Fatalf("api-resources: %v\n%s", err, out)
	}
}

func TestKubectlWatch(t *testing.T) {
	kubectlPath(t)
	e := newEnv(t, nil)
	seedPods(e)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := e.kubectl(ctx, "get", "pods", "-w")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() {
		_ = cmd.Process.Kill()
		for range lines { // drain so the reader goroutine ends
		}
		_ = cmd.Wait()
	}()
	wait := func(substr string) string {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("kubectl get -w ended before %q; stderr:\n%s", substr, stderr.String())
				}
				if strings.Contains(l, substr) {
					return l
				}
			case <-deadline:
				t.Fatalf("no line with %q within 30s; stderr:\n%s", substr, stderr.String())
			}
		}
	}
	wait("web-2")
	e.store.put(podKey("default", "web-3"), pod("default", "web-3", nil, "Pending"))
	if l := wait("web-3"); !strings.Contains(l, "Pending") {
		t.Errorf("watch line %q", l)
	}
}
