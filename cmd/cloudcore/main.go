// Command cloudcore is Skerry's cloud side: it runs beside a Kubernetes API server and holds one
// session per edge node.
package main

import (
	"context"
	"log/slog"

	"github.com/skerry-io/skerry/cloud/config"
	"github.com/skerry-io/skerry/internal/cli"
)

func main() {
	cli.Main(cli.Daemon[*config.CloudCore]{
		Name:     "cloudcore",
		Short:    "Skerry cloud core: syncs edge nodes with a Kubernetes cluster",
		Meta:     config.Meta,
		Defaults: config.Default,
		Run:      run,
	}.Command())
}

func run(_ context.Context, cfg *config.CloudCore, log *slog.Logger) error {
	// The hub, bootstrap and controllers arrive with their issues; until then cloudcore
	// validates its configuration and exits, so packaging and config handling can be tested.
	log.Info("configuration valid; no modules in this build yet, exiting", "kubeconfig", cfg.KubeAPI.Kubeconfig)
	return nil
}
