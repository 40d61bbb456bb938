package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

// Annotations Edged puts on containers (the kubelet's names).
const (
	annotationRestartCount = "io.kubernetes.container.restartCount"
	annotationPodUID       = "io.kubernetes.pod.uid"
)

// validate refuses what Edged does not implement, naming the field (volumes are Volumes'
// to judge).
func validate(pod *corev1.Pod) error {
	unsupported := func(field string) error { return fmt.Errorf("%s: %w", field, edged.ErrUnsupported) }
	spec := &pod.Spec
	if len(spec.EphemeralContainers) > 0 {
		return unsupported("spec.ephemeralContainers")
	}
	if spec.OS != nil && spec.OS.Name != corev1.Linux {
		return unsupported("spec.os.name")
	}
	if spec.HostUsers != nil && !*spec.HostUsers {
		return unsupported("spec.hostUsers")
	}
	if len(spec.ResourceClaims) > 0 {
		return unsupported("spec.resourceClaims")
	}
	if spec.Resources != nil {
		return unsupported("spec.resources")
	}
	for i, c := range spec.InitContainers {
		if c.RestartPolicy != nil {
			return unsupported(fmt.Sprintf("spec.initContainers[%d].restartPolicy", i))
		}
	}
	check := func(path string, sc *corev1.SecurityContext) error {
		if sc == nil {
			return nil
		}
		if sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeLocalhost {
			return unsupported(path + ".securityContext.seccompProfile")
		}
		if sc.WindowsOptions != nil {
			return unsupported(path + ".securityContext.windowsOptions")
		}
		return nil
	}
	if sc := spec.SecurityContext; sc != nil && sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeLocalhost {
		return unsupported("spec.securityContext.seccompProfile")
	}
	for i, c := range spec.InitContainers {
		if err := check(fmt.Sprintf("spec.initContainers[%d]", i), c.SecurityContext); err != nil {
			return err
		}
	}
	for i, c := range spec.Containers {
		if err := check(fmt.Sprintf("spec.containers[%d]", i), c.SecurityContext); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) logDir(pod *corev1.Pod) string {
	return filepath.Join(r.cfg.PodsDir, string(pod.UID), "logs")
}

func (r *Runner) cgroupParent(pod *corev1.Pod) string {
	return r.cfg.CgroupRoot + "/pod" + string(pod.UID)
}

func podLabels(pod *corev1.Pod, node string) map[string]string {
	l := make(map[string]string, len(pod.Labels)+4)
	for k, v := range pod.Labels {
		l[k] = v
	}
	l[edged.LabelPodName] = pod.Name
	l[edged.LabelPodNamespace] = pod.Namespace
	l[edged.LabelPodUID] = string(pod.UID)
	l[edged.LabelNode] = node
	return l
}

func namespaceOptions(pod *corev1.Pod) *runtimeapi.NamespaceOption {
	o := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork {
		o.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace {
		o.Pid = runtimeapi.NamespaceMode_POD
	}
	if pod.Spec.HostPID {
		o.Pid = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		o.Ipc = runtimeapi.NamespaceMode_NODE
	}
	return o
}

// sandboxConfig is the pod's sandbox; the same pod and attempt give the same config, so
// CreateContainer in an adopted sandbox gets what RunPodSandbox got.
func (r *Runner) sandboxConfig(pod *corev1.Pod, attempt uint32) (*runtimeapi.PodSandboxConfig, error) {
	dns, err := r.dnsConfig(pod)
	if err != nil {
		return nil, err
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt,
		},
		LogDirectory: r.logDir(pod),
		DnsConfig:    dns,
		Labels:       podLabels(pod, r.cfg.NodeName),
		Annotations:  pod.Annotations,
	}
	if !pod.Spec.HostNetwork {
		// A host-network pod shares the host's UTS namespace: containerd refuses a hostname.
		cfg.Hostname = podHostname(pod)
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue // containerd ignores mappings without a host port
			}
			cfg.PortMappings = append(cfg.PortMappings, &runtimeapi.PortMapping{
				Protocol: protocol(p.Protocol), ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP,
			})
		}
	}
	sc := &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
		sc.SupplementalGroups = supplementalGroups(pod)
	}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			sc.Privileged = true // as the kubelet: a privileged container needs a privileged sandbox
		}
	}
	cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{CgroupParent: r.cgroupParent(pod), SecurityContext: sc}
	if psc := pod.Spec.SecurityContext; psc != nil && len(psc.Sysctls) > 0 {
		cfg.Linux.Sysctls = map[string]string{}
		for _, s := range psc.Sysctls {
			cfg.Linux.Sysctls[s.Name] = s.Value
		}
	}
	return cfg, nil
}

func protocol(p corev1.Protocol) runtimeapi.Protocol {
	switch p {
	case corev1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case corev1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	}
	return runtimeapi.Protocol_TCP
}

// podHostname is spec.hostname or the pod's name, cut to a DNS label as the kubelet does.
func podHostname(pod *corev1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

func supplementalGroups(pod *corev1.Pod) []int64 {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		return nil
	}
	g := append([]int64{}, psc.SupplementalGroups...)
	if psc.FSGroup != nil {
		g = append(g, *psc.FSGroup)
	}
	return g
}

// dnsConfig follows dnsPolicy. There is no cluster DNS on an edge node (no kube-dns reachable
// offline), so ClusterFirst and ClusterFirstWithHostNet fall back to the host's resolver
// configuration, as Default does.
func (r *Runner) dnsConfig(pod *corev1.Pod) (*runtimeapi.DNSConfig, error) {
	cfg := &runtimeapi.DNSConfig{}
	if pod.Spec.DNSPolicy != corev1.DNSNone {
		host, err := readResolvConf(r.cfg.ResolvConf)
		if err != nil {
			return nil, err
		}
		cfg = host
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		cfg.Servers = append(cfg.Servers, dc.Nameservers...)
		cfg.Searches = append(cfg.Searches, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			cfg.Options = mergeOption(cfg.Options, opt)
		}
	}
	return cfg, nil
}

// mergeOption adds opt, replacing an option of the same name (pod options override).
func mergeOption(opts []string, opt string) []string {
	name, _, _ := strings.Cut(opt, ":")
	for i, o := range opts {
		if n, _, _ := strings.Cut(o, ":"); n == name {
			opts[i] = opt
			return opts
		}
	}
	return append(opts, opt)
}

func readResolvConf(path string) (*runtimeapi.DNSConfig, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &runtimeapi.DNSConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resolv.conf: %w", err)
	}
	defer f.Close()
	cfg := &runtimeapi.DNSConfig{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 || strings.HasPrefix(fs[0], "#") || strings.HasPrefix(fs[0], ";") {
			continue
		}
		switch fs[0] {
		case "nameserver":
			cfg.Servers = append(cfg.Servers, fs[1])
		case "search", "domain":
			cfg.Searches = fs[1:]
		case "options":
			for _, o := range fs[1:] {
				cfg.Options = mergeOption(cfg.Options, o)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("resolv.conf: %w", err)
	}
	return cfg, nil
}

// qosClass is Kubernetes' QoS class of the pod (GetPodQOS, without pod-level resources).
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	requests := corev1.ResourceList{}
	limits := corev1.ResourceList{}
	guaranteed := true
	add := func(l corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		if cur, ok := l[name]; ok {
			cur.Add(q)
			l[name] = cur
		} else {
			l[name] = q.DeepCopy()
		}
	}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := c.Resources.Requests[name]; ok && !q.IsZero() {
				add(requests, name, q)
			}
			if q, ok := c.Resources.Limits[name]; ok && !q.IsZero() {
				add(limits, name, q)
			} else {
				guaranteed = false
			}
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		for name, req := range requests {
			if lim, ok := limits[name]; !ok || lim.Cmp(req) != 0 {
				guaranteed = false
			}
		}
	}
	if guaranteed && len(limits) == 2 {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// linuxResources maps the container's resources as the kubelet does: CPU shares from the
// request (the limit if no request), CFS quota from the limit, the memory limit, and the
// OOM score from the QoS class.
func linuxResources(pod *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerResources {
	res := &runtimeapi.LinuxContainerResources{}
	cpuReq, cpuLim := c.Resources.Requests.Cpu(), c.Resources.Limits.Cpu()
	if cpuReq.IsZero() && !cpuLim.IsZero() {
		res.CpuShares = milliCPUToShares(cpuLim.MilliValue())
	} else {
		res.CpuShares = milliCPUToShares(cpuReq.MilliValue())
	}
	if !cpuLim.IsZero() {
		res.CpuPeriod = 100000
		res.CpuQuota = max(cpuLim.MilliValue()*100000/1000, 1000)
	}
	if m := c.Resources.Limits.Memory(); !m.IsZero() {
		res.MemoryLimitInBytes = m.Value()
	}
	switch qosClass(pod) {
	case corev1.PodQOSGuaranteed:
		res.OomScoreAdj = -997
	case corev1.PodQOSBestEffort:
		res.OomScoreAdj = 1000
	default:
		res.OomScoreAdj = 999
		var si syscall.Sysinfo_t
		if req := c.Resources.Requests.Memory(); syscall.Sysinfo(&si) == nil && si.Totalram > 0 {
			capacity := int64(si.Totalram) * int64(si.Unit)
			res.OomScoreAdj = min(max(1000-1000*req.Value()/capacity, 2), 999)
		}
	}
	return res
}

func milliCPUToShares(m int64) int64 {
	const minShares, maxShares = 2, 262144
	if m == 0 {
		return minShares
	}
	return min(max(m*1024/1000, minShares), maxShares)
}

// securityContext merges the pod's and the container's security context; runAsNonRoot is
// checked against the image's user as the kubelet does.
func (w *worker) securityContext(ctx context.Context, pod *corev1.Pod, c *corev1.Container, imageRef string) (*runtimeapi.LinuxContainerSecurityContext, error) {
	sc := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions:   namespaceOptions(pod),
		SupplementalGroups: supplementalGroups(pod),
	}
	var runAsUser, runAsGroup *int64
	var nonRoot *bool
	seccomp := (*corev1.SeccompProfile)(nil)
	if psc := pod.Spec.SecurityContext; psc != nil {
		runAsUser, runAsGroup, nonRoot, seccomp = psc.RunAsUser, psc.RunAsGroup, psc.RunAsNonRoot, psc.SeccompProfile
	}
	if csc := c.SecurityContext; csc != nil {
		if csc.RunAsUser != nil {
			runAsUser = csc.RunAsUser
		}
		if csc.RunAsGroup != nil {
			runAsGroup = csc.RunAsGroup
		}
		if csc.RunAsNonRoot != nil {
			nonRoot = csc.RunAsNonRoot
		}
		if csc.SeccompProfile != nil {
			seccomp = csc.SeccompProfile
		}
		sc.Privileged = csc.Privileged != nil && *csc.Privileged
		sc.ReadonlyRootfs = csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem
		if csc.Capabilities != nil {
			sc.Capabilities = &runtimeapi.Capability{}
			for _, x := range csc.Capabilities.Add {
				sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(x))
			}
			for _, x := range csc.Capabilities.Drop {
				sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(x))
			}
		}
		sc.NoNewPrivs = !sc.Privileged && csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation
	}
	if runAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *runAsUser}
	}
	if runAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *runAsGroup}
	}
	if seccomp != nil {
		switch seccomp.Type {
		case corev1.SeccompProfileTypeRuntimeDefault:
			sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		case corev1.SeccompProfileTypeUnconfined:
			sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
		}
	}
	if nonRoot != nil && *nonRoot {
		if err := w.verifyNonRoot(ctx, runAsUser, imageRef); err != nil {
			return nil, err
		}
	}
	return sc, nil
}

// verifyNonRoot is the kubelet's check of runAsNonRoot: the effective user must be known
// to be non-zero, from runAsUser or the image's numeric user.
func (w *worker) verifyNonRoot(ctx context.Context, runAsUser *int64, imageRef string) error {
	if runAsUser != nil {
		if *runAsUser == 0 {
			return errors.New("container's runAsUser breaks non-root policy")
		}
		return nil
	}
	st, err := w.r.cfg.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: imageRef}})
	if err != nil {
		return fmt.Errorf("image status for runAsNonRoot: %w", err)
	}
	img := st.GetImage()
	switch {
	case img.GetUid() != nil && img.GetUid().Value == 0, img.GetUid() == nil && img.GetUsername() == "":
		return errors.New("container has runAsNonRoot and image will run as root")
	case img.GetUid() == nil:
		if _, err := strconv.Atoi(img.GetUsername()); err != nil {
			return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root", img.GetUsername())
		}
	}
	return nil
}

// containerConfig is the CRI config of one container attempt.
func (w *worker) containerConfig(ctx context.Context, pod *corev1.Pod, c *corev1.Container, attempt uint32, imageRef string, envs []*runtimeapi.KeyValue, mounts []*runtimeapi.Mount) (*runtimeapi.ContainerConfig, error) {
	sc, err := w.securityContext(ctx, pod, c, imageRef)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		edged.LabelPodName:       pod.Name,
		edged.LabelPodNamespace:  pod.Namespace,
		edged.LabelPodUID:        string(pod.UID),
		edged.LabelContainerName: c.Name,
		edged.LabelNode:          w.r.cfg.NodeName,
	}
	return &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:      &runtimeapi.ImageSpec{Image: imageRef, UserSpecifiedImage: c.Image},
		Command:    c.Command,
		Args:       c.Args,
		WorkingDir: c.WorkingDir,
		Envs:       envs,
		Mounts:     mounts,
		Labels:     labels,
		Annotations: map[string]string{
			annotationRestartCount: strconv.FormatUint(uint64(attempt), 10),
			annotationHash:         containerHash(c),
			annotationPodUID:       string(pod.UID),
			annotationGracePeriod:  strconv.FormatInt(gracePeriod(pod), 10),
		},
		LogPath:   filepath.Join(c.Name, strconv.FormatUint(uint64(attempt), 10)+".log"),
		Stdin:     c.Stdin,
		StdinOnce: c.StdinOnce,
		Tty:       c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       linuxResources(pod, c),
			SecurityContext: sc,
		},
	}, nil
}
