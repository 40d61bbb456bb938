//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/test/e2e/framework"
)

// Images the runtime script builds from our sources and pushes to the local registry. The
// docker.io names resolve to the same registry through containerd's mirror configuration.
const (
	busyboxLocal  = "127.0.0.1:5000/library/busybox:latest"
	busyboxDocker = "docker.io/library/busybox:latest"
	demoImage     = "docker.io/library/skerry-demo:latest"
)

func TestCRIVersionIsContainerd(t *testing.T) {
	v, err := env.CRI.Version(context.Background(), &runtimeapi.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "containerd" || v.RuntimeApiVersion != "v1" {
		t.Fatalf("runtime %s, CRI API %s: want containerd speaking CRI v1", v.RuntimeName, v.RuntimeApiVersion)
	}
}

func TestCRIPullsFromLocalRegistryAndMirror(t *testing.T) {
	ctx := context.Background()
	refs := map[string]string{}
	for _, image := range []string{busyboxLocal, busyboxDocker} {
		resp, err := env.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}})
		if err != nil {
			t.Fatalf("pull %s: %v", image, err)
		}
		st, err := env.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: resp.ImageRef}})
		if err != nil || st.Image == nil {
			t.Fatalf("status of %s (%s): %v", image, resp.ImageRef, err)
		}
		refs[image] = resp.ImageRef
	}
	if refs[busyboxLocal] != refs[busyboxDocker] {
		t.Fatalf("the docker.io mirror served another image: %v", refs)
	}
}

// TestCRIPodLogs runs a pod sandbox on the pod network and a busybox container in it, and reads
// the container's output back from its CRI log file.
func TestCRIPodLogs(t *testing.T) {
	ctx := context.Background()
	sandboxID, sandboxCfg := runSandbox(t, "logs", false)

	st, err := env.CRI.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sandboxID})
	if err != nil {
		t.Fatal(err)
	}
	if ip := st.GetStatus().GetNetwork().GetIp(); net.ParseIP(ip) == nil {
		t.Fatalf("sandbox has no pod IP (network status %v)", st.GetStatus().GetNetwork())
	}

	id := startContainer(t, sandboxID, sandboxCfg, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "echo"},
		Image:    &runtimeapi.ImageSpec{Image: busyboxDocker},
		Command:  []string{"sh", "-c", "echo hello from skerry; echo to stderr >&2; printf no-newline"},
		LogPath:  "echo/0.log",
	})
	waitExited(t, id)

	lines := readCRILog(t, filepath.Join(sandboxCfg.LogDirectory, "echo/0.log"))
	want := []criLogLine{
		{stream: "stdout", tag: "F", text: "hello from skerry"},
		{stream: "stderr", tag: "F", text: "to stderr"},
		{stream: "stdout", tag: "P", text: "no-newline"},
	}
	// Streams are written independently; compare per stream, in order.
	for _, stream := range []string{"stdout", "stderr"} {
		got, exp := filterStream(lines, stream), filterStream(want, stream)
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Errorf("%s lines = %v, want %v", stream, got, exp)
		}
	}
}

// waitExited waits for a container to exit and requires exit code 0.
func waitExited(t *testing.T, id string) {
	t.Helper()
	framework.Eventually(t, 30*time.Second, "container to exit", func(ctx context.Context) (bool, error) {
		st, err := env.CRI.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			return false, err
		}
		s := st.GetStatus()
		if s.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
			return false, nil
		}
		if s.GetExitCode() != 0 {
			return false, fmt.Errorf("exit code %d (%s)", s.GetExitCode(), s.GetReason())
		}
		return true, nil
	})
}

// TestCRIHostNetworkSandbox runs a container in the host's network namespace and checks it sees
// the host's interfaces (the skerry0 pod bridge exists only on the host side).
func TestCRIHostNetworkSandbox(t *testing.T) {
	sandboxID, sandboxCfg := runSandbox(t, "hostnet", true)
	id := startContainer(t, sandboxID, sandboxCfg, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "ifaces"},
		Image:    &runtimeapi.ImageSpec{Image: busyboxLocal},
		Command:  []string{"sh", "-c", "ls /sys/class/net"},
		LogPath:  "ifaces/0.log",
	})
	waitExited(t, id)
	var ifaces []string
	for _, l := range readCRILog(t, filepath.Join(sandboxCfg.LogDirectory, "ifaces/0.log")) {
		ifaces = append(ifaces, strings.Fields(l.text)...)
	}
	if !slices.Contains(ifaces, "lo") || len(ifaces) < 2 {
		t.Fatalf("host-network container sees interfaces %v, want the host's", ifaces)
	}
}

// TestCRIServesDemoApp runs the skerry-demo image and fetches its page over the pod network.
func TestCRIServesDemoApp(t *testing.T) {
	ctx := context.Background()
	sandboxID, sandboxCfg := runSandbox(t, "demo", false)
	startContainer(t, sandboxID, sandboxCfg, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "web"},
		Image:    &runtimeapi.ImageSpec{Image: demoImage},
		Envs:     []*runtimeapi.KeyValue{{Key: "POD_NAME", Value: []byte("demo")}, {Key: "GREETING", Value: []byte("hello-e2e")}},
		LogPath:  "web/0.log",
	})
	st, err := env.CRI.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sandboxID})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + net.JoinHostPort(st.GetStatus().GetNetwork().GetIp(), "8080") + "/"
	client := &http.Client{Timeout: 2 * time.Second}
	var page string
	framework.Eventually(t, 30*time.Second, "demo app to answer on "+url, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil || resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("status %d, %v", resp.StatusCode, err)
		}
		page = string(b)
		return true, nil
	})
	if !strings.Contains(page, "GREETING=hello-e2e") {
		t.Fatalf("demo page does not show the container's env:\n%s", page)
	}
}

func runSandbox(t *testing.T, name string, hostNetwork bool) (string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	uid := fmt.Sprintf("e2e-%s-%d", name, time.Now().UnixNano())
	ns := runtimeapi.NamespaceMode_POD
	if hostNetwork {
		ns = runtimeapi.NamespaceMode_NODE
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "e2e", Uid: uid},
		LogDirectory: t.TempDir(),
		Labels:       map[string]string{"skerry.io/e2e": "true"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: ns},
			},
		},
	}
	if !hostNetwork {
		// A sandbox sharing the host's network shares its UTS namespace too: it may not set one.
		cfg.Hostname = name
	}
	ctx := context.Background()
	resp, err := env.CRI.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	id := resp.PodSandboxId
	t.Cleanup(func() {
		if _, err := env.CRI.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("StopPodSandbox: %v", err)
		}
		if _, err := env.CRI.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
	})
	return id, cfg
}

func startContainer(t *testing.T, sandboxID string, sandboxCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	ctx := context.Background()
	if _, err := env.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: cfg.Image, SandboxConfig: sandboxCfg}); err != nil {
		t.Fatalf("pull %s: %v", cfg.Image.Image, err)
	}
	resp, err := env.CRI.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sandboxCfg})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.Metadata.Name, err)
	}
	if _, err := env.CRI.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatalf("StartContainer %s: %v", cfg.Metadata.Name, err)
	}
	return resp.ContainerId
}

type criLogLine struct{ stream, tag, text string }

func (l criLogLine) String() string { return l.stream + " " + l.tag + " " + l.text }

// readCRILog parses a CRI log file: "<RFC3339Nano> <stdout|stderr> <F|P> <text>" per line.
func readCRILog(t *testing.T, path string) []criLogLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []criLogLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) != 4 {
			t.Fatalf("malformed CRI log line %q", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil {
			t.Fatalf("CRI log line %q: timestamp: %v", sc.Text(), err)
		}
		lines = append(lines, criLogLine{stream: parts[1], tag: parts[2], text: parts[3]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func filterStream(lines []criLogLine, stream string) []criLogLine {
	var out []criLogLine
	for _, l := range lines {
		if l.stream == stream {
			out = append(out, l)
		}
	}
	return out
}
