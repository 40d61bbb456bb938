// Command edgecore is Skerry's edge agent: it keeps an edge node's workloads and devices running,
// connected to the cloud or not.
package main

import (
	"context"
	"log/slog"

	"github.com/skerry-io/skerry/edge/config"
	"github.com/skerry-io/skerry/internal/cli"
)

func main() {
	cli.Main(cli.Daemon[*config.EdgeCore]{
		Name:     "edgecore",
		Short:    "Skerry edge core: runs an edge node's pods and devices",
		Meta:     config.Meta,
		Defaults: config.Default,
		Run:      run,
	}.Command())
}

func run(_ context.Context, cfg *config.EdgeCore, log *slog.Logger) error {
	// Hub, store, edged and the device modules arrive with their issues; until then edgecore
	// validates its configuration and exits.
	log.Info("configuration valid; no modules in this build yet, exiting",
		"node", cfg.NodeName, "dataDir", cfg.DataDir, "runtimeEndpoint", cfg.Runtime.Endpoint)
	return nil
}
