package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skerry-io/skerry/internal/keadm/cloudinstall"
)

// initFunc installs the cloud part; tests pass a recorder.
type initFunc func(context.Context, cloudinstall.Options) (cloudinstall.Result, error)

func newInitCommand() *cobra.Command { return newInitCommandWith(cloudinstall.Init) }

func newInitCommandWith(run initFunc) *cobra.Command {
	var (
		kf   kubeFlags
		o    cloudinstall.Options
		mode string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Install Skerry's cloud part: CRDs, namespace kubeedge, cloudcore's RBAC, and cloudcore itself",
		Long: `Install the device CRDs, the namespace kubeedge and cloudcore's least-privilege RBAC with
server-side apply, then run cloudcore:
  --mode cluster  as a Deployment (host network, on a non-edge node) with a Service;
  --mode process  on this host (a systemd unit, or a detached process without systemd), with a
                  generated cloudcore.yaml that uses --kubeconfig; for clusters without worker
                  nodes, such as the local cluster of "make up".
init waits until cloudcore is ready and prints how to join edge nodes. Running it again changes
nothing; "keadm reset cloud" removes what it created. --dry-run prints the manifests instead.`,
		Example: `  keadm init --advertise-address=192.0.2.10 --kubeconfig=$HOME/.kube/config
  keadm init --mode process --kubeconfig=_output/local/kubeconfig --set hub.quic.enable=true
  keadm init --dry-run | kubectl apply --dry-run=server -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := kf.path()
			if err != nil {
				return err
			}
			o.Kubeconfig = p
			o.Mode = cloudinstall.Mode(mode)
			o.Stdout, o.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if _, err := run(cmd.Context(), o); err != nil {
				return fmt.Errorf("init: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kf.kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster to install into (default $KUBECONFIG, then ~/.kube/config); process-mode cloudcore uses it too")
	f.StringSliceVar(&o.AdvertiseAddresses, "advertise-address", nil, "comma-separated IP addresses edge nodes reach cloudcore at (cloudcore.yaml bootstrap.advertiseAddresses; default: the host's addresses)")
	f.StringSliceVar(&o.DNSNames, "dns-names", nil, "comma-separated extra DNS names of cloudcore's serving certificate (bootstrap.dnsNames)")
	f.StringVar(&mode, "mode", string(cloudinstall.ModeCluster), "where cloudcore runs: cluster (a Deployment) or process (on this host)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print every manifest (and process mode's cloudcore.yaml, on stderr) and change nothing")
	f.StringArrayVar(&o.Set, "set", nil, "set a cloudcore.yaml key, e.g. --set hub.quic.enable=true (repeatable; applied after the other flags)")
	f.StringVar(&o.Image, "image", "", "cluster mode: cloudcore's image (default "+cloudinstall.DefaultImage()+", pushed by hack/runtime-up.sh)")
	f.StringVar(&o.CloudcoreBinary, "cloudcore-binary", "", "process mode: the cloudcore binary (default: cloudcore beside keadm, then on $PATH)")
	f.StringVar(&o.ConfigDir, "config-dir", cloudinstall.DefaultConfigDir, "process mode: where cloudcore.yaml is written")
	f.StringVar(&o.StateDir, "state-dir", cloudinstall.DefaultStateDir, "process mode: cloudcore's pid file and log, and init's record of what it created")
	f.DurationVar(&o.Timeout, "timeout", cloudinstall.DefaultTimeout, "how long to wait for cloudcore to be ready")
	return cmd
}
