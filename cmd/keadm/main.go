// Command keadm installs Skerry's cloud part, issues join tokens and joins edge nodes.
package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/skerry-io/skerry/internal/cli"
	"github.com/skerry-io/skerry/pkg/version"
)

func main() {
	cli.Main(newRootCommand())
}

func newRootCommand() *cobra.Command { return newRootCommandWith(newKubeClient) }

// newRootCommandWith builds keadm with the given way to reach the cluster (tests pass a fake).
func newRootCommandWith(kube kubeClientFunc) *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:           "keadm",
		Short:         "keadm installs Skerry's cloud part and joins edge nodes",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				return printVersion(cmd, "short")
			}
			return cmd.Help()
		},
	}
	root.Flags().BoolVar(&showVersion, "version", false, "print version, git commit and build date and exit")
	// KubeEdge's keadm spells it --kube-config; both work.
	root.SetGlobalNormalizationFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "kube-config" {
			name = "kubeconfig"
		}
		return pflag.NormalizedName(name)
	})
	root.AddCommand(newInitCommand(), newGetTokenCommand(kube), newRevokeTokenCommand(kube),
		newJoinCommand(), newResetCommand(), newVersionCommand())
	return root
}

// newResetCommand groups the two halves: "keadm reset cloud" undoes init, "keadm reset edge"
// undoes join, as in KubeEdge.
func newResetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove what keadm init (reset cloud) or keadm join (reset edge) created",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("say what to reset: keadm reset cloud | keadm reset edge")
		},
	}
	cmd.AddCommand(newResetCloudCommand(), newResetEdgeCommand())
	return cmd
}

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print keadm's version, git commit and build date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return printVersion(cmd, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "short", "output format: short or json")
	return cmd
}

func printVersion(cmd *cobra.Command, output string) error {
	out := cmd.OutOrStdout()
	switch output {
	case "short":
		_, err := fmt.Fprintf(out, "keadm %s\n", version.Get())
		return err
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(version.Get())
	default:
		return fmt.Errorf("--output %q: want short or json", output)
	}
}
