// Command hubbench measures cloud/hub: acked messages per second to one node, fan-out to many
// nodes, hub memory per idle node and reconnection after a hub restart. Everything runs on
// 127.0.0.1; every loop is bounded in count and time. See bench/README.md.
package main

import (
	"fmt"
	"os"
)

const usage = `usage: hubbench <command> [flags]

  throughput  acked messages/s and ack latency to one node (hub and edge in this process)
  fanout      time until one object is acked by --nodes nodes (hub and edges in this process)
  idle        hub VmRSS/heap per idle node and reconnect time after a hub restart
              (runs "hubbench serve" and edgesim as child processes)
  serve       run a hub alone (used by idle)
  ca          write a CA to --dir (for serve and edgesim by hand)
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{"throughput": throughput, "fanout": fanout, "idle": idle, "serve": serve, "ca": writeCA}
	cmd, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err := cmd(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "hubbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
