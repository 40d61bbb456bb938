package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/skerry-io/skerry/internal/keadm/edgejoin"
)

// joinFunc is edgejoin.Join; tests replace it.
type joinFunc func(ctx context.Context, o edgejoin.Options) (edgejoin.Result, error)

// execFunc replaces keadm with argv (syscall.Exec); tests replace it.
type execFunc func(argv []string) error

func newJoinCommand() *cobra.Command {
	return newJoinCommandWith(edgejoin.Join, func(argv []string) error {
		return syscall.Exec(argv[0], argv, os.Environ())
	})
}

func newJoinCommandWith(join joinFunc, exec execFunc) *cobra.Command {
	var (
		o      edgejoin.Options
		ignore string
	)
	cmd := &cobra.Command{
		Use:   "join",
		Short: "Join this host to the cloud as an edge node: check it, configure edgecore and run it",
		Long: `Join this host to the cloud as an edge node.

keadm join checks the host (container runtime, free ports, cgroups, node name, data dir, the
cloud's reachability), writes edgecore's configuration to <config-dir>/edgecore.yaml (without
the token), gets the node's certificate with the token, runs edgecore as a systemd unit (or a
background process where there is no systemd), and waits until it is connected.
Joining again with the same flags is safe; "keadm reset edge" undoes it.`,
		Example: `  keadm join --cloudcore-ipport=10.0.0.1:10000 --token=$(ssh cloud keadm gettoken)
  keadm join --cloudcore-ipport=10.0.0.1:10000 --token=... --edgenode-name=edge-1 --labels=site=lab,tier=edge
  keadm join --cloudcore-ipport=10.0.0.1:10000 --token=... --set edged.cgroupRoot=/edge --foreground`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ignore != "" {
				o.IgnoreChecks = strings.Split(ignore, ",")
			}
			o.Stdout, o.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			res, err := join(cmd.Context(), o)
			if err != nil {
				return err
			}
			if o.Foreground {
				fmt.Fprintf(cmd.ErrOrStderr(), "running edgecore in the foreground: %s\n", strings.Join(res.Exec, " "))
				if err := exec(res.Exec); err != nil {
					return fmt.Errorf("exec %s: %w", res.Exec[0], err)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.CloudCoreIPPort, "cloudcore-ipport", "", "cloudcore's hub address host:port (WebSocket, usually port 10000); required")
	f.StringVar(&o.Token, "token", "", "join token from keadm gettoken on the cloud; required unless the node already has its certificate")
	f.StringVar(&o.NodeName, "edgenode-name", "", "this node's name in Kubernetes (default: the host name in lower case)")
	f.StringVar(&o.RuntimeEndpoint, "remote-runtime-endpoint", edgejoin.DefaultRuntimeEndpoint, "the container runtime's CRI socket")
	f.StringVar(&o.Labels, "labels", "", "node labels k=v,k2=v2 (config node.labels)")
	f.StringVar(&o.HubProtocol, "hub-protocol", "websocket", "websocket or quic; quic connects to the host of --cloudcore-ipport on port "+edgejoin.QUICPort+", as KubeEdge does")
	f.StringArrayVar(&o.Sets, "set", nil, "set an edgecore configuration key, e.g. --set edged.cgroupRoot=/edge (repeatable; applied after the other flags)")
	f.BoolVar(&o.Foreground, "foreground", false, "after setup, run edgecore in the foreground in keadm's place instead of as a service")
	f.StringVar(&o.EdgecoreBinary, "edgecore-binary", "", "edgecore executable (default: edgecore beside keadm, then in $PATH)")
	f.StringVar(&o.ConfigDir, "config-dir", edgejoin.DefaultConfigDir, "where edgecore.yaml is written")
	f.StringVar(&o.StateDir, "state-dir", edgejoin.DefaultStateDir, "where keadm records what it created (and edgecore's pid and log without systemd)")
	f.StringVar(&ignore, "ignore-checks", "", "comma list of host checks to turn into warnings: runtime, ports, cgroups, node-name, data-dir, cloud, or all")
	f.DurationVar(&o.Timeout, "timeout", edgejoin.DefaultTimeout, "how long to wait for the certificate and for edgecore to connect")
	_ = cmd.MarkFlagRequired("cloudcore-ipport")
	return cmd
}
