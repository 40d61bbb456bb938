package cloudinstall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/skerry-io/skerry/cloud/config"
	"github.com/skerry-io/skerry/internal/keadm/service"
)

// Result is what init did and where cloudcore runs.
type Result struct {
	Mode Mode
	// RunsAs says where cloudcore runs: the pod and node, or the host service.
	RunsAs string
	// ConfigFile is process mode's cloudcore.yaml.
	ConfigFile string
	// Service is process mode's running service.
	Service service.Handle
	// HubAddress is what edge nodes pass to keadm join --cloudcore-ipport; HubProtocol its transport.
	HubAddress  string
	HubProtocol string
	// BootstrapURL and ReadyURL are the bootstrap service and the admin readiness endpoint.
	BootstrapURL string
	ReadyURL     string
	// Objects lists every object and what apply did to it ("created", "unchanged", ...), in order.
	Objects []ObjectResult
}

// ObjectResult is what init did to one object.
type ObjectResult struct {
	Object string // "Kind namespace/name"
	Result string
}

// Init installs cloudcore as o says and waits until it is ready. Running it again with the same
// options changes nothing and succeeds.
func Init(ctx context.Context, o Options) (Result, error) {
	o.defaults()
	if err := o.check(); err != nil {
		return Result{}, err
	}
	cfg, err := o.CloudConfig()
	if err != nil {
		return Result{}, err
	}
	image := o.Image
	if o.Mode == ModeCluster && image == "" {
		image = DefaultImage()
	}
	m, err := buildManifests(cfg, o.Mode, image)
	if err != nil {
		return Result{}, err
	}
	configPath := filepath.Join(o.ConfigDir, ConfigFileName)
	res := Result{Mode: o.Mode}
	if o.Mode == ModeProcess {
		res.ConfigFile = configPath
	}
	if o.DryRun {
		if err := writeYAMLStream(o.Stdout, m.all()); err != nil {
			return res, err
		}
		if o.Mode == ModeProcess {
			_, err = fmt.Fprintf(o.Stderr, "# %s that init would write to %s (mode 0600; not a Kubernetes object):\n%s",
				ConfigFileName, configPath, m.Config)
		}
		return res, err
	}

	var binary string
	if o.Mode == ModeProcess {
		if binary, err = o.cloudcoreBinary(); err != nil {
			return res, err
		}
	}
	c := o.Clients
	if c == nil {
		if c, err = NewClients(o.Kubeconfig); err != nil {
			return res, err
		}
	}
	st := &steps{w: o.Stderr, total: 6}
	applyAll := func(objs []*unstructured.Unstructured, keepForeign bool) ([]string, error) {
		var notes []string
		for _, obj := range objs {
			r, err := c.apply(ctx, obj, keepForeign)
			if err != nil {
				return notes, err
			}
			res.Objects = append(res.Objects, ObjectResult{Object: describe(obj), Result: string(r)})
			notes = append(notes, describe(obj)+": "+string(r))
		}
		return notes, nil
	}

	err = st.run("checking the cluster", func() ([]string, error) {
		notes, err := checkCluster(c)
		if err != nil {
			return notes, err
		}
		return notes, o.checkOtherMode(ctx, c)
	})
	if err != nil {
		return res, err
	}
	err = st.run("namespace "+Namespace, func() ([]string, error) {
		if err := c.waitNamespaceNotTerminating(ctx, o.Timeout, o.PollInterval); err != nil {
			return nil, err
		}
		return applyAll([]*unstructured.Unstructured{m.Namespace}, true)
	})
	if err != nil {
		return res, err
	}
	err = st.run("installing CRDs", func() ([]string, error) {
		notes, err := applyAll(m.CRDs, true)
		// Later objects may be of the new kinds; the mapper must look again.
		c.Mapper.Reset()
		return notes, err
	})
	if err != nil {
		return res, err
	}
	if err := st.run("installing cloudcore's RBAC", func() ([]string, error) { return applyAll(m.RBAC, false) }); err != nil {
		return res, err
	}

	spec := service.Spec{Name: Name, Binary: binary, Args: []string{"--config", configPath}, StateDir: o.StateDir}
	if o.Mode == ModeCluster {
		err = st.run("deploying cloudcore ("+image+")", func() ([]string, error) { return applyAll(m.Workload, false) })
	} else {
		err = st.run("starting cloudcore on this host", func() ([]string, error) {
			h, notes, err := o.startProcess(ctx, spec, m.Config)
			res.Service = h
			res.RunsAs = h.String()
			return notes, err
		})
	}
	if err != nil {
		return res, err
	}

	adminHost, adminPort, err := probeTarget(cfg.Admin.Address)
	if err != nil {
		return res, err
	}
	res.ReadyURL = "http://" + net.JoinHostPort(adminHost, fmt.Sprint(adminPort)) + "/readyz"
	var hostIP string
	err = st.run(fmt.Sprintf("waiting for cloudcore to be ready (up to %s)", o.Timeout), func() ([]string, error) {
		if o.Mode == ModeCluster {
			pod, node, ip, err := c.waitDeployment(ctx, o.Timeout, o.PollInterval)
			if err != nil {
				return nil, err
			}
			hostIP = ip
			res.RunsAs = fmt.Sprintf("Deployment %s/%s, pod %s on node %s (host network)", Namespace, Name, pod, node)
			return nil, nil
		}
		return nil, o.waitProcess(ctx, c, spec, res.Service, res.ReadyURL)
	})
	if err != nil {
		return res, err
	}
	res.HubAddress, res.HubProtocol, res.BootstrapURL = endpoints(cfg, o.Mode, hostIP)
	return res, writeSummary(o.Stdout, o, res)
}

// cloudcoreBinary resolves --cloudcore-binary to an absolute path of an executable file.
func (o *Options) cloudcoreBinary() (string, error) {
	if o.CloudcoreBinary == "" {
		return FindCloudcore()
	}
	p, err := filepath.Abs(o.CloudcoreBinary)
	if err != nil {
		return "", fmt.Errorf("--cloudcore-binary %q: %w", o.CloudcoreBinary, err)
	}
	if err := executable(p); err != nil {
		return "", fmt.Errorf("--cloudcore-binary: %w", err)
	}
	return p, nil
}

func checkCluster(c *Clients) ([]string, error) {
	v, err := c.Discovery.ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("the API server does not answer (%w): check --kubeconfig and that the cluster runs", err)
	}
	return []string{"Kubernetes " + v.GitVersion}, nil
}

// checkOtherMode refuses to run cloudcore a second time in the other mode: two cloudcores would
// fight over the webhook's registration and edge nodes would reach either.
func (o *Options) checkOtherMode(ctx context.Context, c *Clients) error {
	if o.Mode == ModeCluster {
		r, err := readRecord(o.StateDir)
		if err != nil {
			return err
		}
		if r != nil {
			return fmt.Errorf("an earlier keadm init --mode process runs cloudcore on this host (%s): run keadm reset cloud first",
				filepath.Join(o.StateDir, recordFile))
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	d, err := c.Dynamic.Resource(gvrDeployment).Namespace(Namespace).Get(ctx, Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get Deployment %s/%s: %w", Namespace, Name, err)
	}
	if d.GetLabels()[ManagedByLabel] == ManagedBy {
		return fmt.Errorf("an earlier keadm init --mode cluster runs cloudcore as Deployment %s/%s: run keadm reset cloud first", Namespace, Name)
	}
	return nil
}

// waitNamespaceNotTerminating waits while a namespace deletion (a reset just before) finishes.
func (c *Clients) waitNamespaceNotTerminating(ctx context.Context, timeout, poll time.Duration) error {
	return pollUntil(ctx, timeout, poll, func(ctx context.Context) (bool, error) {
		ns, err := c.Dynamic.Resource(gvrNamespace).Get(ctx, Namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("get namespace %s: %w", Namespace, err)
		}
		return ns.GetDeletionTimestamp() == nil, nil
	}, func() error {
		return fmt.Errorf("namespace %s is still being deleted after %s: wait for it (kubectl get ns %s) and run init again", Namespace, timeout, Namespace)
	})
}

// pollUntil calls done every poll until it says true, fails, or timeout passes; then it returns
// onTimeout's error.
func pollUntil(ctx context.Context, timeout, poll time.Duration, done func(context.Context) (bool, error), onTimeout func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		rctx, rcancel := context.WithTimeout(ctx, requestTimeout)
		ok, err := done(rctx)
		rcancel()
		if ok {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			if parent := context.Cause(ctx); !errors.Is(parent, context.DeadlineExceeded) {
				return parent
			}
			return onTimeout()
		case <-t.C:
		}
	}
}

// endpoints are the addresses edge nodes use: the first advertise address, else (process mode)
// this host's first address or (cluster mode) the node's, with the configured ports.
func endpoints(cfg *config.CloudCore, mode Mode, nodeIP string) (hub, proto, bootstrap string) {
	host := ""
	switch {
	case len(cfg.Bootstrap.AdvertiseAddresses) > 0:
		host = cfg.Bootstrap.AdvertiseAddresses[0]
	case mode == ModeCluster:
		host = nodeIP
	default:
		host = firstHostIP()
	}
	if host == "" {
		host = "CLOUDCORE-ADDRESS"
	}
	port := func(addr string) string {
		_, p, _ := net.SplitHostPort(addr) // validated
		return p
	}
	proto, hubAddr := "websocket", cfg.Hub.WebSocket.Address
	if !cfg.Hub.WebSocket.Enable {
		proto, hubAddr = "quic", cfg.Hub.QUIC.Address
	}
	return net.JoinHostPort(host, port(hubAddr)), proto, "https://" + net.JoinHostPort(host, port(cfg.Bootstrap.Address))
}

// firstHostIP is the address cloudcore advertises when none is configured: the first
// non-loopback, non-link-local one of this host (cloud/app does the same).
func firstHostIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

func writeSummary(w io.Writer, o Options, r Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "cloudcore is ready (mode %s)\n", r.Mode)
	fmt.Fprintf(&b, "  runs as:    %s\n", r.RunsAs)
	if r.ConfigFile != "" {
		fmt.Fprintf(&b, "  config:     %s\n", r.ConfigFile)
	}
	fmt.Fprintf(&b, "  hub:        %s (%s)\n", r.HubAddress, r.HubProtocol)
	fmt.Fprintf(&b, "  bootstrap:  %s\n", r.BootstrapURL)
	fmt.Fprintf(&b, "  readiness:  %s (on the host cloudcore runs on)\n", r.ReadyURL)
	b.WriteString("Join an edge node:\n")
	kc, _ := filepath.Abs(o.Kubeconfig)
	fmt.Fprintf(&b, "  TOKEN=$(keadm gettoken --kubeconfig %s)\n", shellQuote(kc))
	join := "  keadm join --cloudcore-ipport=" + r.HubAddress + " --token=$TOKEN"
	if r.HubProtocol != "websocket" {
		join += " --hub-protocol " + r.HubProtocol
	}
	b.WriteString(join + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:,@=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// steps prints numbered steps on stderr as they go, each with its duration and its notes.
type steps struct {
	w     io.Writer
	total int
	n     int
}

func (s *steps) run(desc string, f func() ([]string, error)) error {
	s.n++
	fmt.Fprintf(s.w, "[%d/%d] %s ... ", s.n, s.total, desc)
	start := time.Now()
	notes, err := f()
	took := fmt.Sprintf("%.1fs", time.Since(start).Seconds())
	if err != nil {
		fmt.Fprintf(s.w, "failed (%s)\n", took)
	} else {
		fmt.Fprintf(s.w, "done (%s)\n", took)
	}
	for _, n := range notes {
		fmt.Fprintf(s.w, "      %s\n", n)
	}
	return err
}
