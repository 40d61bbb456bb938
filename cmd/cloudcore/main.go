// Command cloudcore is Skerry's cloud side: it runs beside a Kubernetes API server and holds one
// session per edge node.
package main

import (
	"github.com/skerry-io/skerry/cloud/app"
	"github.com/skerry-io/skerry/cloud/config"
	"github.com/skerry-io/skerry/internal/cli"
)

func main() {
	cli.Main(cli.Daemon[*config.CloudCore]{
		Name:     "cloudcore",
		Short:    "Skerry cloud core: syncs edge nodes with a Kubernetes cluster",
		Meta:     config.Meta,
		Defaults: config.Default,
		Minimal:  config.Minimal,
		Run:      app.Run,
	}.Command())
}
