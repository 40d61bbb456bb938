// Command edgecore is Skerry's edge agent: it keeps an edge node's workloads and devices running,
// connected to the cloud or not.
package main

import (
	"github.com/skerry-io/skerry/edge/app"
	"github.com/skerry-io/skerry/edge/config"
	"github.com/skerry-io/skerry/internal/cli"
)

func main() {
	cli.Main(cli.Daemon[*config.EdgeCore]{
		Name:     "edgecore",
		Short:    "Skerry edge core: runs an edge node's pods and devices",
		Meta:     config.Meta,
		Defaults: config.Default,
		Minimal:  config.Minimal,
		Run:      app.Run,
	}.Command())
}
