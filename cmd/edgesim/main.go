// Command edgesim runs many hollow edge nodes in one process against a cloudcore hub, for scale
// tests: every node has its own name, client certificate and connection, reports an empty
// inventory, sends keepalives and acknowledges every downstream message. It prints a report
// when --duration has passed or on SIGINT/SIGTERM.
//
// --store-dir gives every node a real edge store (<dir>/<node>/edge.db) that commits each
// message before the ack, as edgecore does; --register makes the nodes register their Node
// (and renew a Lease every --lease-every) so that a real cloudcore syncs pods to them.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/skerry-io/skerry/cmd/edgesim/sim"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/transport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "edgesim:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg      sim.Config
		caCert   = flag.String("ca-cert", "", "CA certificate (PEM): signs the node certificates and verifies the hub")
		caKey    = flag.String("ca-key", "", "CA private key (PEM)")
		duration = flag.Duration("duration", 0, "run this long, then report (0: until SIGINT)")
		asJSON   = flag.Bool("json", false, "print the report as JSON")
		verbose  = flag.Bool("v", false, "log session ends")
		status   = flag.Duration("status-every", 0, "print a one-line status this often on stderr (0: never)")
	)
	flag.IntVar(&cfg.Nodes, "nodes", 10, "number of nodes")
	flag.StringVar(&cfg.Prefix, "prefix", sim.DefaultPrefix, "node names are <prefix>-<i>")
	flag.StringVar(&cfg.Server, "server", "127.0.0.1:10000", "hub address host:port")
	flag.StringVar(&cfg.Protocol, "protocol", transport.ProtocolWebSocket, "websocket or quic")
	flag.StringVar(&cfg.ProjectID, "project-id", transport.DefaultProjectID, "project id in the connection path")
	flag.StringVar(&cfg.ServerName, "server-name", "", "name expected in the hub certificate (default: host of --server)")
	flag.Float64Var(&cfg.ConnectRate, "connect-rate", 100, "connection attempts per second over all nodes, reconnects included (0: unbounded)")
	flag.IntVar(&cfg.Concurrency, "concurrency", sim.DefaultConcurrency, "dials in progress at once")
	flag.DurationVar(&cfg.Keepalive, "keepalive", sim.DefaultKeepalive, "keepalive interval")
	flag.DurationVar(&cfg.RetryMin, "retry-min", sim.DefaultRetryMin, "first reconnect delay (doubles per failure, jittered)")
	flag.DurationVar(&cfg.RetryMax, "retry-max", sim.DefaultRetryMax, "longest reconnect delay")
	flag.StringVar(&cfg.StoreDir, "store-dir", "", "give every node a real edge store in <dir>/<node> and ack after its commit (default: no store)")
	flag.BoolVar(&cfg.Register, "register", false, "register every node's Node on connect")
	flag.DurationVar(&cfg.LeaseInterval, "lease-every", 0, "with --register: renew the node Lease this often (0: never; the kubelet uses 10s)")
	flag.BoolVar(&cfg.CountBytes, "count-bytes", false, "count downstream bytes per resource type (re-encodes every message)")
	flag.Parse()
	if *caCert == "" || *caKey == "" {
		return fmt.Errorf("--ca-cert and --ca-key are required")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if soft, hard, err := sim.RaiseNoFileLimit(); err != nil {
		cfg.Log.Warn("cannot raise RLIMIT_NOFILE", "err", err)
	} else if uint64(cfg.Nodes)+64 > soft {
		cfg.Log.Warn("open-file limit below the node count", "soft", soft, "hard", hard, "nodes", cfg.Nodes)
	}

	ca, err := pki.LoadCA(*caCert, *caKey)
	if err != nil {
		return err
	}
	cfg.CA = ca
	s, err := sim.New(cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Close(); err != nil {
			cfg.Log.Warn("closing stores", "err", err)
		}
	}()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if *status > 0 {
		go func() { // ends with the process; only reads counters
			t := time.NewTicker(*status)
			defer t.Stop()
			for range t.C {
				r := s.Report()
				fmt.Fprintf(os.Stderr, "connected %d/%d acked %d reconnects %d\n", r.ConnectedNow, r.Nodes, r.Acked, r.Reconnects)
			}
		}()
	}
	s.Run(ctx)
	r := s.Report()
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	r.WriteText(os.Stdout)
	return nil
}
