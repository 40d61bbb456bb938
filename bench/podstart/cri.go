package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

const (
	// floorLabel marks the floor's own sandboxes; floorCgroupRoot is their cgroup parent.
	floorLabel      = "skerry.io/podstart-floor"
	floorCgroupRoot = "/skerry-podstart-floor"
	floorNamespace  = "podstart-floor"
)

type criClient struct {
	conn *grpc.ClientConn
	rt   runtimeapi.RuntimeServiceClient
	img  runtimeapi.ImageServiceClient
}

func dialCRI(endpoint string) (*criClient, error) {
	if !strings.HasPrefix(endpoint, "unix://") {
		return nil, fmt.Errorf("endpoint %q: only unix:// endpoints are supported", endpoint)
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", endpoint, err)
	}
	return &criClient{conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn), img: runtimeapi.NewImageServiceClient(conn)}, nil
}

func (c *criClient) close() { _ = c.conn.Close() }

func (c *criClient) pull(ctx context.Context, image string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}}); err != nil {
		return fmt.Errorf("pull %s: %w", image, err)
	}
	return nil
}

// floorSample is one pod started directly through CRI.
type floorSample struct {
	TotalMS  float64 `json:"totalMs"`
	SandboxM float64 `json:"runPodSandboxMs"`
	CreateMS float64 `json:"createContainerMs"`
	StartMS  float64 `json:"startContainerMs"`
}

// floorPod is what teardown needs of a floor pod.
type floorPod struct {
	id, uid, dir string
}

// floor starts n pods like Edged's (pod network, its own cgroup parent, the host's DNS, a log
// directory, busybox running sleep 3600 with an /etc/hosts mount), one at a time or all at
// once, timing RunPodSandbox + CreateContainer + StartContainer of each; then tears them down.
// started (if not nil) runs once all parallel pods started, before the teardown.
func (c *criClient) floor(ctx context.Context, work, image string, n int, parallel bool, started func()) ([]floorSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out := make([]floorSample, n)
	pods := make([]*floorPod, n)
	defer func() {
		var wg sync.WaitGroup
		for _, p := range pods {
			if p != nil {
				wg.Go(func() { c.teardown(p) })
			}
		}
		wg.Wait()
	}()
	one := func(i int) error {
		p, s, err := c.floorPod(ctx, work, image, i)
		pods[i] = p
		out[i] = s
		return err
	}
	if !parallel {
		for i := range n {
			if err := one(i); err != nil {
				return nil, err
			}
			c.teardown(pods[i])
			pods[i] = nil
		}
		return out, nil
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			if err := one(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	close(gate)
	wg.Wait()
	if started != nil {
		started()
	}
	return out, errors.Join(errs...)
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (c *criClient) floorPod(ctx context.Context, work, image string, i int) (*floorPod, floorSample, error) {
	var s floorSample
	uid := randomID()
	dir := filepath.Join(work, "floor", uid)
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, s, err
	}
	hosts := filepath.Join(dir, "hosts")
	name := fmt.Sprintf("podstart-floor-%d", i)
	if err := os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost\n"), 0o644); err != nil {
		return nil, s, err
	}
	p := &floorPod{uid: uid, dir: dir}
	nsOpts := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: floorNamespace, Uid: uid},
		Hostname:     name,
		LogDirectory: filepath.Join(dir, "logs"),
		DnsConfig:    hostDNS(),
		Labels: map[string]string{
			floorLabel: "true", edged.LabelPodName: name, edged.LabelPodNamespace: floorNamespace, edged.LabelPodUID: uid,
		},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    floorCgroupRoot + "/pod" + uid,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: nsOpts},
		},
	}
	t0 := time.Now()
	resp, err := c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return p, s, fmt.Errorf("RunPodSandbox: %w", err)
	}
	p.id = resp.PodSandboxId
	t1 := time.Now()
	cr, err := c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: p.id, SandboxConfig: cfg,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"sleep", "3600"},
			Labels:   map[string]string{floorLabel: "true"},
			Mounts:   []*runtimeapi.Mount{{ContainerPath: "/etc/hosts", HostPath: hosts}},
			LogPath:  "main/0.log",
			Linux: &runtimeapi.LinuxContainerConfig{
				SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: nsOpts},
			},
		},
	})
	if err != nil {
		return p, s, fmt.Errorf("CreateContainer: %w", err)
	}
	t2 := time.Now()
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		return p, s, fmt.Errorf("StartContainer: %w", err)
	}
	t3 := time.Now()
	return p, floorSample{TotalMS: ms(t3.Sub(t0)), SandboxM: ms(t1.Sub(t0)), CreateMS: ms(t2.Sub(t1)), StartMS: ms(t3.Sub(t2))}, nil
}

// hostDNS is the host's resolv.conf as a CRI DNS config (what dnsPolicy Default gives).
func hostDNS() *runtimeapi.DNSConfig {
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	d := &runtimeapi.DNSConfig{}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			d.Servers = append(d.Servers, f[1])
		case "search":
			d.Searches = f[1:]
		case "options":
			d.Options = f[1:]
		}
	}
	return d
}

// teardown stops and removes a floor sandbox (SIGKILL: sleep as PID 1 ignores SIGTERM), then
// its cgroups and directory, on a fresh context.
func (c *criClient) teardown(p *floorPod) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if p.id != "" {
		if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
			progress("StopPodSandbox %s: %v", p.id, err)
		} else if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
			progress("RemovePodSandbox %s: %v", p.id, err)
		}
	}
	removeCgroup(floorCgroupRoot + "/pod" + p.uid)
	_ = os.RemoveAll(p.dir)
}

func (c *criClient) sandboxes(ctx context.Context, labels map[string]string) ([]*runtimeapi.PodSandbox, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: labels}})
	if err != nil {
		return nil, fmt.Errorf("ListPodSandbox: %w", err)
	}
	return r.Items, nil
}

// containerStarted is when containerd started the pod's (newest) container.
func (c *criClient) containerStarted(ctx context.Context, ns, pod string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{edged.LabelPodNamespace: ns, edged.LabelPodName: pod}}})
	if err != nil {
		return time.Time{}, fmt.Errorf("ListContainers: %w", err)
	}
	var newest *runtimeapi.Container
	for _, ctr := range r.Containers {
		if newest == nil || ctr.CreatedAt > newest.CreatedAt {
			newest = ctr
		}
	}
	if newest == nil {
		return time.Time{}, fmt.Errorf("pod %s/%s is Running but the runtime has no container of it", ns, pod)
	}
	st, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: newest.Id})
	if err != nil {
		return time.Time{}, fmt.Errorf("ContainerStatus: %w", err)
	}
	return time.Unix(0, st.Status.StartedAt), nil
}

// removeSandboxes stops and removes every sandbox with the labels (and so its containers).
func (c *criClient) removeSandboxes(ctx context.Context, labels map[string]string) error {
	items, err := c.sandboxes(ctx, labels)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range items {
		if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(items) > 0 {
		progress("removed %d leftover sandboxes labelled %v", len(items), labels)
	}
	return errors.Join(errs...)
}

// removeCgroup removes the cgroup dir under every v1 controller (the kernel refuses while a
// process is in it).
func removeCgroup(path string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + path)
	for _, d := range dirs {
		_ = os.Remove(d)
	}
}

// removeCgroups removes root's empty pod cgroups, then root, under every controller.
func removeCgroups(root string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + root + "/pod*")
	for _, d := range dirs {
		_ = os.Remove(d)
	}
	removeCgroup(root)
}
