package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/skerry-io/skerry/internal/keadm/cloudinstall"
)

// resetFunc removes the cloud part; tests pass a recorder.
type resetFunc func(context.Context, cloudinstall.Options) error

func newResetCloudCommand() *cobra.Command { return newResetCloudCommandWith(cloudinstall.Reset) }

func newResetCloudCommandWith(run resetFunc) *cobra.Command {
	var (
		kf kubeFlags
		o  cloudinstall.Options
	)
	cmd := &cobra.Command{
		Use:   "cloud",
		Short: "Remove what keadm init created: cloudcore, its objects, the namespace kubeedge and the CRDs keadm installed",
		Long: `Remove exactly what "keadm init" created: the process-mode cloudcore and the files init
recorded in --state-dir; the cluster objects labelled app.kubernetes.io/managed-by=keadm
(Deployment, Service, ConfigMap, RBAC, the CRDs and the namespace kubeedge when keadm created
them; deleting the namespace deletes the join tokens and cloudcore's CA too) and the webhook
configuration cloudcore registered. Edge nodes' Nodes and Leases stay. Running it again is safe.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := kf.path()
			if err != nil {
				return err
			}
			o.Kubeconfig = p
			o.Stdout, o.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := run(cmd.Context(), o); err != nil {
				return fmt.Errorf("reset cloud: %w", err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "the cloud part keadm init installed is removed")
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&kf.kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster (default $KUBECONFIG, then ~/.kube/config)")
	f.StringVar(&o.ConfigDir, "config-dir", cloudinstall.DefaultConfigDir, "the --config-dir init used")
	f.StringVar(&o.StateDir, "state-dir", cloudinstall.DefaultStateDir, "the --state-dir init used")
	f.DurationVar(&o.Timeout, "timeout", cloudinstall.DefaultTimeout, "how long to wait for the namespace to be gone")
	f.BoolVar(&o.HostOnly, "host-only", false, "remove only what init created on this host (process mode); leave the cluster alone, e.g. when it is already gone")
	return cmd
}
