package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/skerry-io/skerry/internal/keadm/edgejoin"
)

// resetEdgeFunc is edgejoin.Reset; tests replace it.
type resetEdgeFunc func(ctx context.Context, o edgejoin.Options) error

func newResetEdgeCommand() *cobra.Command { return newResetEdgeCommandWith(edgejoin.Reset) }

func newResetEdgeCommandWith(reset resetEdgeFunc) *cobra.Command {
	var o edgejoin.Options
	cmd := &cobra.Command{
		Use:   "edge",
		Short: "Undo keadm join on this host: stop edgecore, remove its pods, cgroups and files",
		Long: `Undo "keadm join" on this host, from the record join left in <state-dir>/edge.json: stop and
remove the edgecore service, stop and remove the pods edgecore ran (and their cgroups), the DMI
socket, edgecore's configuration and data dir. The container runtime and other containers are
left alone. The Node object stays in Kubernetes: delete it on the cloud with kubectl.
Resetting a host that is not joined does nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Stdout, o.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return reset(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ConfigDir, "config-dir", edgejoin.DefaultConfigDir, "where join wrote edgecore.yaml")
	f.StringVar(&o.StateDir, "state-dir", edgejoin.DefaultStateDir, "where join recorded what it created")
	f.StringVar(&o.RuntimeEndpoint, "remote-runtime-endpoint", "", "the container runtime's CRI socket (default: the one join configured)")
	return cmd
}
