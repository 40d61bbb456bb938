// Package edgejoin is what `keadm join` and `keadm reset edge` do: check the host, write
// edgecore's configuration, bootstrap the node certificate, run edgecore as a service and wait
// until it is connected; and undo exactly that, from the record join leaves in its state dir.
package edgejoin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skerry-io/skerry/edge/config"
	"github.com/skerry-io/skerry/internal/keadm/service"
	"github.com/skerry-io/skerry/pkg/configfile"
)

// Defaults of the flags.
const (
	DefaultConfigDir       = "/etc/kubeedge/config"
	DefaultStateDir        = "/var/lib/skerry/keadm"
	DefaultRuntimeEndpoint = "unix:///run/containerd/containerd.sock"
	DefaultTimeout         = 2 * time.Minute
	// QUICPort is cloudcore's QUIC hub port; --hub-protocol quic uses it on the host of
	// --cloudcore-ipport, as KubeEdge does.
	QUICPort = "10001"
	// ConfigFile is edgecore's configuration file name in the config dir.
	ConfigFile = "edgecore.yaml"
	// ServiceName is edgecore's unit and pid/log file name.
	ServiceName = "edgecore"
	// maxLabelsFlag bounds --labels.
	maxLabelsFlag = 64 << 10
)

// Options are join's and reset's inputs: the flags, and what tests replace.
type Options struct {
	CloudCoreIPPort string
	Token           string
	NodeName        string
	RuntimeEndpoint string
	// Labels is --labels: k=v,k2=v2.
	Labels      string
	HubProtocol string
	Sets        []string
	// Foreground: join sets up everything but the service, and Result.Exec is the command to
	// exec in keadm's place.
	Foreground     bool
	EdgecoreBinary string
	ConfigDir      string
	StateDir       string
	IgnoreChecks   []string
	Timeout        time.Duration

	// Stdout gets the results, Stderr the progress. nil discards.
	Stdout, Stderr io.Writer
	// Bootstrap obtains the node certificate (default certs.Bootstrap).
	Bootstrap func(ctx context.Context, addr, token, nodeName, dataDir string) error
	// Service runs edgecore (default: package service).
	Service Service
	// Runtime talks to the container runtime (default: a CRI client of the endpoint).
	Runtime func(endpoint string) (Runtime, error)
	// MountInfo and CgroupFS locate the host's mounts and cgroup v1 hierarchies (defaults
	// /proc/self/mountinfo and /sys/fs/cgroup).
	MountInfo, CgroupFS string
	// Dial opens the reachability probes of the cloud (default net.Dialer).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Service is package service's API, replaceable in tests.
type Service interface {
	Start(ctx context.Context, s service.Spec) (service.Handle, error)
	Running(s service.Spec) (bool, error)
	Remove(ctx context.Context, s service.Spec) error
	Stop(ctx context.Context, s service.Spec) error
	LogTail(s service.Spec, lines int) (string, error)
}

type hostService struct{}

func (hostService) Start(ctx context.Context, s service.Spec) (service.Handle, error) {
	return service.Start(ctx, s)
}
func (hostService) Running(s service.Spec) (bool, error)             { return service.Running(s) }
func (hostService) Remove(ctx context.Context, s service.Spec) error { return service.Remove(ctx, s) }
func (hostService) Stop(ctx context.Context, s service.Spec) error   { return service.Stop(ctx, s) }
func (hostService) LogTail(s service.Spec, lines int) (string, error) {
	return service.LogTail(s, lines)
}

func (o *Options) setDefaults() {
	if o.ConfigDir == "" {
		o.ConfigDir = DefaultConfigDir
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.HubProtocol == "" {
		o.HubProtocol = config.ProtocolWebSocket
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.Bootstrap == nil {
		o.Bootstrap = certsBootstrap
	}
	if o.Service == nil {
		o.Service = hostService{}
	}
	if o.Runtime == nil {
		o.Runtime = newCRIRuntime
	}
	if o.MountInfo == "" {
		o.MountInfo = "/proc/self/mountinfo"
	}
	if o.CgroupFS == "" {
		o.CgroupFS = "/sys/fs/cgroup"
	}
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = d.DialContext
	}
}

// ConfigPath is where join writes edgecore's configuration.
func (o *Options) ConfigPath() string { return filepath.Join(o.ConfigDir, ConfigFile) }

// BuildConfig maps the flags onto edgecore's defaults, applies --set over them and validates
// the result. The token is never part of it: it is only for the bootstrap.
func BuildConfig(o Options) (*config.EdgeCore, error) {
	if o.CloudCoreIPPort == "" {
		return nil, errors.New("--cloudcore-ipport is required: cloudcore's hub address, e.g. 10.0.0.1:10000")
	}
	host, _, err := net.SplitHostPort(o.CloudCoreIPPort)
	if err != nil || host == "" {
		return nil, fmt.Errorf("--cloudcore-ipport %q: want host:port of cloudcore's hub, e.g. 10.0.0.1:10000", o.CloudCoreIPPort)
	}
	cfg := config.Default()
	cfg.Hub.Server = o.CloudCoreIPPort
	switch o.HubProtocol {
	case "", config.ProtocolWebSocket:
		cfg.Hub.Protocol = config.ProtocolWebSocket
	case config.ProtocolQUIC:
		cfg.Hub.Protocol = config.ProtocolQUIC
		cfg.Hub.Server = net.JoinHostPort(host, QUICPort)
		// The bootstrap endpoint stays on the host's TCP bootstrap port.
	default:
		return nil, fmt.Errorf("--hub-protocol %q: want websocket or quic", o.HubProtocol)
	}
	if o.NodeName != "" {
		if msgs := validation.IsDNS1123Subdomain(o.NodeName); len(msgs) > 0 {
			return nil, fmt.Errorf("--edgenode-name %q: %s", o.NodeName, strings.Join(msgs, "; "))
		}
		cfg.NodeName = o.NodeName
	} else if msgs := validation.IsDNS1123Subdomain(cfg.NodeName); len(msgs) > 0 {
		return nil, fmt.Errorf("the host name %q is not a valid node name (%s): pass --edgenode-name", cfg.NodeName, strings.Join(msgs, "; "))
	}
	if o.RuntimeEndpoint != "" {
		cfg.Runtime.Endpoint = o.RuntimeEndpoint
	}
	labels, err := ParseLabels(o.Labels)
	if err != nil {
		return nil, err
	}
	if len(labels) > 0 {
		cfg.Node.Labels = labels
	}
	for _, s := range o.Sets {
		if err := configfile.Set(cfg, s); err != nil {
			return nil, err
		}
	}
	if cfg.Hub.Token != "" {
		return nil, errors.New("--set hub.token: pass the token with --token; join keeps it out of the configuration file")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("edgecore configuration: %w", err)
	}
	return cfg, nil
}

// ParseLabels reads --labels "k=v,k2=v2", each a valid Kubernetes label.
func ParseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	if len(s) > maxLabelsFlag {
		return nil, fmt.Errorf("--labels: longer than %d bytes", maxLabelsFlag)
	}
	out := make(map[string]string)
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--labels %q: want key=value", kv)
		}
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			return nil, fmt.Errorf("--labels: key %q: %s", k, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			return nil, fmt.Errorf("--labels: value %q of %s: %s", v, k, strings.Join(msgs, "; "))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--labels: key %q given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// edgecoreBinary resolves --edgecore-binary: the flag (a path, or a name in $PATH), else
// edgecore beside the running keadm, else edgecore in $PATH.
func edgecoreBinary(flag string) (string, error) {
	if flag != "" {
		p := flag
		if !strings.Contains(flag, "/") {
			lp, err := lookPath(flag)
			if err != nil {
				return "", fmt.Errorf("--edgecore-binary %q: not found in $PATH", flag)
			}
			p = lp
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if err := executable(abs); err != nil {
			return "", fmt.Errorf("--edgecore-binary: %w", err)
		}
		return abs, nil
	}
	var tried []string
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), ServiceName)
		if executable(beside) == nil {
			return beside, nil
		}
		tried = append(tried, beside)
	}
	if lp, err := lookPath(ServiceName); err == nil {
		return filepath.Abs(lp)
	}
	tried = append(tried, "$PATH")
	return "", fmt.Errorf("edgecore not found (looked in %s): pass --edgecore-binary /path/to/edgecore", strings.Join(tried, ", "))
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// checkNames are the host checks --ignore-checks may name.
var checkNames = []string{checkRuntime, checkPorts, checkCgroups, checkNodeName, checkDataDir, checkCloud}

func validateIgnore(names []string) error {
	for _, n := range names {
		if n != "" && n != "all" && !slices.Contains(checkNames, n) {
			return fmt.Errorf("--ignore-checks %q: unknown check; the checks are %s (or all)", n, strings.Join(checkNames, ", "))
		}
	}
	return nil
}
