// Command crismoke drives a CRI runtime (our containerd) the way edged will, to prove the runtime
// set up by hack/runtime-up.sh works, and to show the call sequence the agent needs. It also has
// the small helpers the runtime scripts need, since crictl is not packaged for Debian 12.
//
//	crismoke wait                  wait until the runtime and its pod network report ready
//	crismoke pull IMAGE...         pull images through CRI (and so through the registry mirrors)
//	crismoke smoke [--host-network] pod + busybox container that echoes a line; checks log and IP
//	crismoke demo [--host-port N]  pod running skerry-demo; GETs it on the pod IP from the host
//	crismoke list                  print every pod sandbox and container
//	crismoke cleanup               stop and remove every pod sandbox and container
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	defaultEndpoint = "unix:///run/skerry/containerd/containerd.sock"
	busyboxImage    = "docker.io/library/busybox:latest"
	demoImage       = "docker.io/library/skerry-demo:latest"
	// cgroupRoot is the cgroupfs parent of the smoke pods; like edged, we own the pod-level
	// cgroup and remove it ourselves (runc removes only the container's leaf).
	cgroupRoot = "/skerry-crismoke"
	pollEvery  = 50 * time.Millisecond
)

type options struct {
	endpoint    string
	timeout     time.Duration
	hostNetwork bool
	hostPort    int
	image       string
	hold        time.Duration
}

func main() {
	if err := mainErr(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "crismoke:", err)
		os.Exit(1)
	}
}

func mainErr(args []string) error {
	fs := flag.NewFlagSet("crismoke", flag.ContinueOnError)
	o := &options{}
	endpoint := os.Getenv("CONTAINER_RUNTIME_ENDPOINT")
	if endpoint == "" {
		endpoint = defaultEndpoint
	}
	fs.StringVar(&o.endpoint, "endpoint", endpoint, "CRI endpoint (default $CONTAINER_RUNTIME_ENDPOINT or the skerry containerd)")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "overall deadline")
	fs.BoolVar(&o.hostNetwork, "host-network", false, "smoke: run the pod in the host network namespace")
	fs.IntVar(&o.hostPort, "host-port", 0, "demo: also map this host port to the demo's 8080 (portmap) and GET it")
	fs.StringVar(&o.image, "image", "", "smoke/demo: image to run instead of the default")
	fs.DurationVar(&o.hold, "hold", 0, "demo: keep the pod running this long (or until SIGINT/SIGTERM) before teardown, e.g. to curl it")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: crismoke [flags] wait|pull IMAGE...|smoke|demo|list|cleanup")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("missing command")
	}
	// Interrupting still tears down: the commands clean up on a fresh context.
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, o.timeout+o.hold)
	defer cancel()

	c, err := dial(o.endpoint)
	if err != nil {
		return err
	}
	defer c.close()

	switch cmd, rest := fs.Arg(0), fs.Args()[1:]; cmd {
	case "wait":
		return c.waitReady(ctx)
	case "pull":
		if len(rest) == 0 {
			return errors.New("pull: no image given")
		}
		for _, img := range rest {
			t := time.Now()
			ref, err := c.pull(ctx, img)
			if err != nil {
				return err
			}
			fmt.Printf("pulled %s (%s) in %s\n", img, ref, since(t))
		}
		return nil
	case "smoke":
		return c.smoke(ctx, o)
	case "demo":
		return c.demo(ctx, o)
	case "list":
		return c.list(ctx)
	case "cleanup":
		return c.cleanup(ctx)
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
}

type client struct {
	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient
	img  runtimeapi.ImageServiceClient
}

func dial(endpoint string) (*client, error) {
	if !strings.HasPrefix(endpoint, "unix://") {
		return nil, fmt.Errorf("endpoint %q: only unix:// endpoints are supported", endpoint)
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", endpoint, err)
	}
	return &client{
		conn: conn,
		rt:   runtimeapi.NewRuntimeServiceClient(conn),
		img:  runtimeapi.NewImageServiceClient(conn),
	}, nil
}

func (c *client) close() { _ = c.conn.Close() }

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

// waitReady polls until the runtime answers Version and reports both RuntimeReady and
// NetworkReady (the CNI config has been loaded).
func (c *client) waitReady(ctx context.Context) error {
	start := time.Now()
	var last error
	for {
		last = c.ready(ctx)
		if last == nil {
			fmt.Printf("runtime ready after %s\n", since(start))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("runtime not ready: %w", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *client) ready(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	v, err := c.rt.Version(rctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return err
	}
	st, err := c.rt.Status(rctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return err
	}
	for _, cond := range st.GetStatus().GetConditions() {
		if !cond.Status {
			return fmt.Errorf("%s %s: condition %s false: %s %s", v.RuntimeName, v.RuntimeVersion, cond.Type, cond.Reason, cond.Message)
		}
	}
	return nil
}

func (c *client) pull(ctx context.Context, image string) (string, error) {
	resp, err := c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", image, err)
	}
	return resp.ImageRef, nil
}

// timings records how long each step took, printed as a table at the end.
type timings struct {
	durs []time.Duration
	last time.Time
}

func newTimings() *timings { return &timings{last: time.Now()} }

func (t *timings) step(name string) {
	now := time.Now()
	d := now.Sub(t.last)
	t.durs = append(t.durs, d)
	t.last = now
	fmt.Printf("  %-28s %8s\n", name, d.Round(time.Millisecond))
}

func (t *timings) total() time.Duration {
	var d time.Duration
	for _, x := range t.durs {
		d += x
	}
	return d.Round(time.Millisecond)
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pod is one sandbox started by this tool, with what is needed to tear it down.
type pod struct {
	id     string
	uid    string
	logDir string
	config *runtimeapi.PodSandboxConfig
}

func (c *client) runPod(ctx context.Context, name string, hostNetwork bool, ports []*runtimeapi.PortMapping) (*pod, error) {
	uid := randomID()
	logDir, err := os.MkdirTemp("", "crismoke-"+name+"-")
	if err != nil {
		return nil, err
	}
	netMode := runtimeapi.NamespaceMode_POD
	if hostNetwork {
		netMode = runtimeapi.NamespaceMode_NODE
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: "skerry-crismoke"},
		LogDirectory: logDir,
		PortMappings: ports,
		Labels:       map[string]string{"skerry.io/crismoke": "true"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: cgroupRoot + "/pod" + uid,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: netMode, Pid: runtimeapi.NamespaceMode_CONTAINER},
			},
		},
	}
	if !hostNetwork {
		// A host-network pod shares the host's UTS namespace too: containerd then fails
		// RunPodSandbox with "unable to set hostname without a private UTS namespace".
		cfg.Hostname = name
	}
	resp, err := c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		_ = os.RemoveAll(logDir)
		removePodCgroups(uid)
		return nil, fmt.Errorf("RunPodSandbox: %w", err)
	}
	return &pod{id: resp.PodSandboxId, uid: uid, logDir: logDir, config: cfg}, nil
}

// teardown stops and removes the sandbox (and with it its containers), then the pod's cgroups
// and log directory. It runs on a fresh context so it still works after the deadline.
func (c *client) teardown(p *pod) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		errs = append(errs, fmt.Errorf("StopPodSandbox: %w", err))
	}
	if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
		errs = append(errs, fmt.Errorf("RemovePodSandbox: %w", err))
	}
	removePodCgroups(p.uid)
	if err := os.RemoveAll(p.logDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removePodCgroups removes /<controller>/skerry-crismoke/pod<uid> under every cgroup v1
// controller; the kernel refuses (EBUSY) while a process is still in it, which is what we want.
func removePodCgroups(uid string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + cgroupRoot + "/pod" + uid)
	for _, d := range dirs {
		_ = os.Remove(d)
		_ = os.Remove(filepath.Dir(d)) // the shared parent, once empty
	}
}

func (c *client) podIP(ctx context.Context, id string) (string, error) {
	st, err := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		return "", fmt.Errorf("PodSandboxStatus: %w", err)
	}
	if st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		return "", fmt.Errorf("sandbox %s is %s", id, st.Status.State)
	}
	return st.GetStatus().GetNetwork().GetIp(), nil
}

func (c *client) startContainer(ctx context.Context, p *pod, cfg *runtimeapi.ContainerConfig) (string, error) {
	resp, err := c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: p.id, Config: cfg, SandboxConfig: p.config,
	})
	if err != nil {
		return "", fmt.Errorf("CreateContainer: %w", err)
	}
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		return "", fmt.Errorf("StartContainer: %w", err)
	}
	return resp.ContainerId, nil
}

// waitExited polls ContainerStatus (containerd 1.6 has no container event stream) until the
// container has exited, and returns its exit code.
func (c *client) waitExited(ctx context.Context, id string) (int32, error) {
	for {
		st, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			return 0, fmt.Errorf("ContainerStatus: %w", err)
		}
		if st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st.Status.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("container %s still %s: %w", id, st.Status.State, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// logLine is one parsed line of a CRI log file: "<RFC3339Nano> <stream> <P|F> <text>".
type logLine struct {
	stream string
	text   string
}

func parseCRILog(data string) ([]logLine, error) {
	var out []logLine
	partial := ""
	for _, raw := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		if raw == "" {
			continue
		}
		f := strings.SplitN(raw, " ", 4)
		if len(f) < 3 {
			return nil, fmt.Errorf("malformed CRI log line %q", raw)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			return nil, fmt.Errorf("CRI log line %q: %w", raw, err)
		}
		text := ""
		if len(f) == 4 {
			text = f[3]
		}
		switch f[2] {
		case "P":
			partial += text
		case "F":
			out = append(out, logLine{stream: f[1], text: partial + text})
			partial = ""
		default:
			return nil, fmt.Errorf("CRI log line %q: bad tag %q", raw, f[2])
		}
	}
	return out, nil
}

// waitLog polls the container's log file until want appears in a line of the given stream: the
// runtime may still be flushing when the container is reported exited.
func waitLog(ctx context.Context, path, stream, want string) ([]logLine, error) {
	for {
		data, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		lines, perr := parseCRILog(string(data))
		if perr != nil {
			return nil, perr
		}
		for _, l := range lines {
			if l.stream == stream && strings.Contains(l.text, want) {
				return lines, nil
			}
		}
		select {
		case <-ctx.Done():
			return lines, fmt.Errorf("%s: no %s line containing %q (have %d lines): %w", path, stream, want, len(lines), ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

func (c *client) smoke(ctx context.Context, o *options) (rerr error) {
	image := o.image
	if image == "" {
		image = busyboxImage
	}
	mode := "pod network"
	if o.hostNetwork {
		mode = "host network"
	}
	fmt.Printf("CRI smoke test against %s (%s)\n", o.endpoint, mode)
	t := newTimings()
	v, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	t.step("Version " + v.RuntimeName + " " + v.RuntimeVersion)

	if _, err := c.pull(ctx, image); err != nil {
		return err
	}
	t.step("PullImage")

	p, err := c.runPod(ctx, "crismoke", o.hostNetwork, nil)
	if err != nil {
		return err
	}
	t.step("RunPodSandbox")
	defer func() {
		start := time.Now()
		if err := c.teardown(p); err != nil {
			rerr = errors.Join(rerr, err)
		}
		fmt.Printf("  %-28s %8s\n", "Stop+RemovePodSandbox", since(start))
	}()

	ip, err := c.podIP(ctx, p.id)
	if err != nil {
		return err
	}
	if !o.hostNetwork && net.ParseIP(ip) == nil {
		return fmt.Errorf("sandbox has no pod IP (got %q): CNI did not run", ip)
	}
	t.step("PodSandboxStatus ip=" + ip)

	token := "hello from skerry crismoke " + randomID()
	cid, err := c.startContainer(ctx, p, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "echo"},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  []string{"sh", "-c", `echo "$TOKEN"; echo "to stderr" >&2; ip -4 addr show dev eth0 2>/dev/null | grep -q inet || [ "$HOST_NET" = true ]`},
		Envs: []*runtimeapi.KeyValue{
			{Key: "TOKEN", Value: []byte(token)},
			{Key: "HOST_NET", Value: []byte(strconv.FormatBool(o.hostNetwork))},
		},
		LogPath: "echo/0.log",
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: p.config.Linux.SecurityContext.NamespaceOptions,
			},
		},
	})
	if err != nil {
		return err
	}
	t.step("Create+StartContainer")

	code, err := c.waitExited(ctx, cid)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("container exited with code %d (no eth0 address in the pod?)", code)
	}
	t.step("container exited 0")

	lines, err := waitLog(ctx, filepath.Join(p.logDir, "echo/0.log"), "stdout", token)
	if err != nil {
		return err
	}
	sawStderr := false
	for _, l := range lines {
		sawStderr = sawStderr || (l.stream == "stderr" && l.text == "to stderr")
	}
	if !sawStderr {
		return fmt.Errorf("log lacks the stderr line: %+v", lines)
	}
	t.step("CRI log has stdout+stderr")
	fmt.Printf("PASS (%s, %s before teardown)\n", mode, t.total())
	return nil
}

func (c *client) demo(ctx context.Context, o *options) (rerr error) {
	image := o.image
	if image == "" {
		image = demoImage
	}
	fmt.Printf("skerry-demo on %s\n", o.endpoint)
	t := newTimings()
	if _, err := c.pull(ctx, image); err != nil {
		return err
	}
	t.step("PullImage")

	var ports []*runtimeapi.PortMapping
	if o.hostPort != 0 {
		ports = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: int32(o.hostPort)}}
	}
	p, err := c.runPod(ctx, "skerry-demo", false, ports)
	if err != nil {
		return err
	}
	t.step("RunPodSandbox")
	defer func() {
		start := time.Now()
		if err := c.teardown(p); err != nil {
			rerr = errors.Join(rerr, err)
		}
		fmt.Printf("  %-28s %8s\n", "Stop+RemovePodSandbox", since(start))
	}()
	ip, err := c.podIP(ctx, p.id)
	if err != nil {
		return err
	}
	if net.ParseIP(ip) == nil {
		return fmt.Errorf("sandbox has no pod IP (got %q)", ip)
	}

	// A config file mounted read-only, as a ConfigMap volume would be.
	cfgDir := filepath.Join(p.logDir, "config")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		return err
	}
	configText := "greeting = hello from crismoke " + randomID()
	if err := os.WriteFile(filepath.Join(cfgDir, "config"), []byte(configText+"\n"), 0o644); err != nil {
		return err
	}
	cid, err := c.startContainer(ctx, p, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "web"},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Envs: []*runtimeapi.KeyValue{
			{Key: "POD_NAME", Value: []byte(p.config.Metadata.Name)},
			{Key: "POD_NAMESPACE", Value: []byte(p.config.Metadata.Namespace)},
			{Key: "POD_IP", Value: []byte(ip)},
		},
		Mounts:  []*runtimeapi.Mount{{ContainerPath: "/etc/skerry-demo", HostPath: cfgDir, Readonly: true}},
		LogPath: "web/0.log",
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: p.config.Linux.SecurityContext.NamespaceOptions,
			},
		},
	})
	if err != nil {
		return err
	}
	t.step("Create+StartContainer")

	base := "http://" + net.JoinHostPort(ip, "8080")
	if err := waitHTTP(ctx, base+"/healthz"); err != nil {
		return err
	}
	t.step("GET /healthz 200")
	page, err := get(ctx, base+"/")
	if err != nil {
		return err
	}
	for _, want := range []string{configText, "pod IP:        " + ip, "pod name:      skerry-demo"} {
		if !strings.Contains(page, want) {
			return fmt.Errorf("page from %s lacks %q:\n%s", base, want, page)
		}
	}
	t.step("GET / shows env+config")

	if o.hostPort != 0 {
		hostIP, err := outboundIP()
		if err != nil {
			return err
		}
		url := "http://" + net.JoinHostPort(hostIP, strconv.Itoa(o.hostPort)) + "/readyz"
		if err := waitHTTP(ctx, url); err != nil {
			return fmt.Errorf("hostPort: %w", err)
		}
		t.step("GET hostPort " + hostIP)
	}

	if _, err := waitLog(ctx, filepath.Join(p.logDir, "web/0.log"), "stdout", `"path":"/"`); err != nil {
		return err
	}
	t.step("request logged")
	hold(ctx, o.hold, base+"/")
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted while holding: %w", err)
	}

	// The demo handles SIGTERM, so this must return well before the grace period.
	if _, err := c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: cid, Timeout: 10}); err != nil {
		return fmt.Errorf("StopContainer: %w", err)
	}
	code, err := c.waitExited(ctx, cid)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("skerry-demo exited with %d after SIGTERM", code)
	}
	t.step("StopContainer (SIGTERM) exit 0")
	fmt.Printf("PASS (%s before teardown)\n", t.total())
	return nil
}

// hold keeps a pod up for manual poking until d passes or ctx ends (e.g. on Ctrl-C).
func hold(ctx context.Context, d time.Duration, url string) {
	if d <= 0 {
		return
	}
	fmt.Printf("holding the pod for %s: curl %s\n", d, url)
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (c *client) list(ctx context.Context) error {
	sandboxes, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("ListPodSandbox: %w", err)
	}
	for _, s := range sandboxes.Items {
		m := s.GetMetadata()
		fmt.Printf("sandbox   %.13s  %-18s %s/%s\n", s.Id, s.State, m.GetNamespace(), m.GetName())
	}
	containers, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return fmt.Errorf("ListContainers: %w", err)
	}
	for _, ctr := range containers.Containers {
		fmt.Printf("container %.13s  %-18s %s (sandbox %.13s) %s\n", ctr.Id, ctr.State, ctr.GetMetadata().GetName(), ctr.PodSandboxId, ctr.GetImage().GetImage())
	}
	return nil
}

// outboundIP is the host address a packet to the outside would leave from (UDP "dial" sends
// nothing): hostPort DNAT applies to it from the host itself, whereas 127.0.0.1 needs
// route_localnet.
func outboundIP() (string, error) {
	conn, err := net.Dial("udp", "198.51.100.1:9")
	if err != nil {
		return "", err
	}
	defer conn.Close()
	host, _, err := net.SplitHostPort(conn.LocalAddr().String())
	return host, err
}

func get(ctx context.Context, url string) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), nil
}

func waitHTTP(ctx context.Context, url string) error {
	for {
		_, err := get(ctx, url)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET %s: %w (last error: %v)", url, ctx.Err(), err)
		case <-time.After(pollEvery):
		}
	}
}

// cleanup stops and removes every container and sandbox the runtime knows: runtime-down calls it
// before stopping containerd so CNI DEL runs (IP leases, veths, iptables rules) and no shim,
// mount or network namespace is left behind.
func (c *client) cleanup(ctx context.Context) error {
	sandboxes, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("ListPodSandbox: %w", err)
	}
	var errs []error
	for _, s := range sandboxes.Items {
		if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop sandbox %s: %w", s.Id, err))
			continue
		}
		if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s: %w", s.Id, err))
		}
		if uid := s.GetMetadata().GetUid(); s.Labels["skerry.io/crismoke"] == "true" && uid != "" {
			removePodCgroups(uid)
		}
	}
	// Containers whose sandbox was already gone.
	containers, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("ListContainers: %w", err))...)
	}
	for _, ctr := range containers.Containers {
		if _, err := c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctr.Id, Timeout: 0}); err != nil {
			errs = append(errs, fmt.Errorf("stop container %s: %w", ctr.Id, err))
		}
		if _, err := c.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ctr.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", ctr.Id, err))
		}
	}
	fmt.Printf("removed %d pod sandboxes and %d stray containers\n", len(sandboxes.Items), len(containers.Containers))
	return errors.Join(errs...)
}
