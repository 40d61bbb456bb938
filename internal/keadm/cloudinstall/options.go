// Package cloudinstall is what `keadm init` and `keadm reset cloud` do: install the CRDs,
// cloudcore's namespace and RBAC with server-side apply, run cloudcore in the cluster (a
// Deployment and a Service) or on this host (a generated config and a service), wait until it
// is ready, and remove exactly that again.
//
// Everything keadm creates in the cluster carries the label app.kubernetes.io/managed-by=keadm;
// a namespace or CRD that existed without it is left alone by init and by reset. On the host,
// init records the files and directories it created in the state directory, and reset removes
// those and nothing else.
package cloudinstall

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/skerry-io/skerry/cloud/config"
	"github.com/skerry-io/skerry/pkg/configfile"
	"github.com/skerry-io/skerry/pkg/version"
)

// Mode is where cloudcore runs.
type Mode string

const (
	// ModeCluster runs cloudcore as a Deployment in the cluster.
	ModeCluster Mode = "cluster"
	// ModeProcess runs cloudcore on this host, as a systemd unit or a detached process.
	ModeProcess Mode = "process"
)

// Defaults of the options.
const (
	DefaultConfigDir = "/etc/kubeedge/config"
	DefaultStateDir  = "/var/lib/skerry/keadm"
	DefaultTimeout   = 5 * time.Minute
	// DefaultRegistry and ImageRepository are where hack/runtime-up.sh pushes the cloudcore image.
	DefaultRegistry = "127.0.0.1:5000"
	ImageRepository = "skerry/cloudcore"
)

// Options are init's and reset's settings. Reset reads Kubeconfig, ConfigDir, StateDir,
// Timeout, the writers and the injected clients and services.
type Options struct {
	// Kubeconfig is the kubeconfig file of the cluster; in process mode cloudcore uses it too.
	Kubeconfig string
	Mode       Mode
	// AdvertiseAddresses and DNSNames become bootstrap.advertiseAddresses and bootstrap.dnsNames.
	AdvertiseAddresses []string
	DNSNames           []string
	// Set are "key=value" assignments to cloudcore.yaml, applied after the flags above.
	Set []string
	// Image is cluster mode's cloudcore image; empty means DefaultImage().
	Image string
	// CloudcoreBinary is process mode's cloudcore; empty means FindCloudcore().
	CloudcoreBinary string
	// ConfigDir holds process mode's cloudcore.yaml; StateDir the pid file, log and init's record.
	ConfigDir string
	StateDir  string
	// Timeout bounds the wait for cloudcore to be ready (init) or the namespace to be gone (reset).
	Timeout time.Duration
	// HostOnly makes Reset remove only what init created on this host and leave the cluster
	// alone: for a cluster that is gone or stopped.
	HostOnly bool
	// DryRun prints the manifests (and process mode's cloudcore.yaml) and changes nothing.
	DryRun bool

	// Stdout gets results (the summary, dry-run manifests); Stderr the steps as they go.
	Stdout, Stderr io.Writer
	// Clients reach the cluster; nil means built from Kubeconfig.
	Clients *Clients
	// Services runs process mode's cloudcore; nil means the host's (systemd or a detached process).
	Services Services
	// PollInterval is how often waits look again; zero means one second.
	PollInterval time.Duration
}

func (o *Options) defaults() {
	if o.Mode == "" {
		o.Mode = ModeCluster
	}
	if o.ConfigDir == "" {
		o.ConfigDir = DefaultConfigDir
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.Services == nil {
		o.Services = hostServices{}
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
}

// check validates the options that do not depend on the cluster.
func (o *Options) check() error {
	var errs []error
	switch o.Mode {
	case ModeCluster, ModeProcess:
	default:
		errs = append(errs, fmt.Errorf("--mode %q: want cluster or process", o.Mode))
	}
	for _, d := range []struct{ flag, path string }{{"--config-dir", o.ConfigDir}, {"--state-dir", o.StateDir}} {
		if !filepath.IsAbs(d.path) {
			errs = append(errs, fmt.Errorf("%s %q: want an absolute path", d.flag, d.path))
		}
	}
	if o.Image != "" && !imageRef.MatchString(o.Image) {
		errs = append(errs, fmt.Errorf("--image %q: not an image reference", o.Image))
	}
	return errors.Join(errs...)
}

// imageRef is a loose check of an image reference, enough to catch a flag mix-up; the
// registry has the last word.
var imageRef = regexp.MustCompile(`^[a-z0-9]([a-zA-Z0-9._:/@+-]{0,510}[a-zA-Z0-9_])?$`)

// tagRE is the OCI distribution spec's tag grammar.
var tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// ImageTag is the tag of the cloudcore image built from the same tree as this keadm: keadm's
// version (hack/runtime-up.sh tags the image with cloudcore's, and both come from
// hack/version.sh), or "latest" when that is not a valid tag.
func ImageTag(v string) string {
	if tagRE.MatchString(v) {
		return v
	}
	return "latest"
}

// DefaultImage is the cloudcore image hack/runtime-up.sh pushes for this keadm's version.
func DefaultImage() string {
	return DefaultRegistry + "/" + ImageRepository + ":" + ImageTag(version.Get().GitVersion)
}

// CloudConfig is cloudcore's configuration for these options: the defaults, the advertise
// addresses and DNS names, in process mode the kubeconfig, then every --set, validated.
func (o *Options) CloudConfig() (*config.CloudCore, error) {
	cfg := config.Default()
	cfg.Bootstrap.AdvertiseAddresses = append([]string(nil), o.AdvertiseAddresses...)
	cfg.Bootstrap.DNSNames = append([]string(nil), o.DNSNames...)
	if o.Mode == ModeProcess {
		abs, err := filepath.Abs(o.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %q: %w", o.Kubeconfig, err)
		}
		cfg.KubeAPI.Kubeconfig = abs
	}
	for _, s := range o.Set {
		if err := configfile.Set(cfg, s); err != nil {
			return nil, err
		}
	}
	var errs []error
	if cfg.Namespace != Namespace {
		errs = append(errs, fmt.Errorf("namespace: %q, but keadm installs cloudcore into %q (its RBAC names it)", cfg.Namespace, Namespace))
	}
	if o.Mode == ModeCluster && cfg.KubeAPI.Kubeconfig != "" {
		errs = append(errs, fmt.Errorf("kubeAPI.kubeconfig: %q, but in cluster mode cloudcore uses its ServiceAccount: leave it empty", cfg.KubeAPI.Kubeconfig))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cloudcore configuration: %w", err)
	}
	return cfg, nil
}

// FindCloudcore is the default cloudcore binary: "cloudcore" beside the running executable,
// else the one on $PATH.
func FindCloudcore() (string, error) {
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		p := filepath.Join(filepath.Dir(exe), "cloudcore")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := lookPath("cloudcore")
	if err != nil {
		return "", errors.New("cloudcore binary not found beside keadm nor on $PATH: pass --cloudcore-binary")
	}
	return filepath.Abs(p)
}
