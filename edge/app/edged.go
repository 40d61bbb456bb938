package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/skerry-io/skerry/edge/config"
	"github.com/skerry-io/skerry/edge/cri"
	"github.com/skerry-io/skerry/edge/edged"
	"github.com/skerry-io/skerry/edge/edged/imagegc"
	"github.com/skerry-io/skerry/edge/edged/objects"
	"github.com/skerry-io/skerry/edge/edged/probe"
	"github.com/skerry-io/skerry/edge/edged/report"
	"github.com/skerry-io/skerry/edge/edged/runner"
	"github.com/skerry-io/skerry/edge/edged/server"
	"github.com/skerry-io/skerry/edge/edged/staticpods"
	"github.com/skerry-io/skerry/edge/edged/volumes"
	"github.com/skerry-io/skerry/edge/nodestatus"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// hostIPWait bounds how long Edged waits for the node's address at start: the runner
// needs it for status.hostIP and the downward API.
const hostIPWait = 10 * time.Second

// startEdged wires Edged's parts: volumes and environment, probes and hooks, the reporter
// that sends pod status through the outbox, the pod runner, static pods from
// edged.staticPodPath, and the kubelet-style API. None of them needs the cloud.
func startEdged(ctx context.Context, start func(string, func(context.Context) error), cfg *config.EdgeCore,
	db *store.DB, rt *cri.Client, node *nodestatus.Reporter, notify func(), log *slog.Logger) error {
	podsDir := filepath.Join(cfg.DataDir, "pods")
	objs := objects.Store{DB: db}
	vols := volumes.New(volumes.Config{Root: podsDir, Objects: objs, Logger: log.With("component", "volumes")})
	hooks := probe.NewHookRunner(probe.Config{Exec: rt, Logger: log.With("component", "hooks")})
	rep := report.New(db.Outbox(), notify, cfg.NodeName, log.With("component", "podstatus"))

	var status edged.StatusSink = rep
	var static *staticpods.Manager
	if cfg.Edged.StaticPodPath != "" {
		var err error
		static, err = staticpods.New(staticpods.Config{
			Dir: cfg.Edged.StaticPodPath, NodeName: cfg.NodeName, Store: db, Outbox: db.Outbox(), Notify: notify,
			Logger: log,
		})
		if err != nil {
			return fmt.Errorf("edged.staticPodPath: %w", err)
		}
		status = static.StatusSink(rep)
	}

	// Probe failures become the kubelet's Unhealthy events, through the same sink as the
	// runner's (static pods' events go to their mirror pods).
	prober := probe.New(probe.Config{Exec: rt, Event: status.Event, Logger: log.With("component", "prober")})
	hostIP := nodeInternalIP(ctx, node)
	r, err := runner.New(runner.Config{
		Runtime: rt.Runtime(), Images: rt.ImageService(), Store: db,
		Volumes: vols, Env: vols, Prober: prober, Hooks: hooks, Status: status, Objects: objs,
		NodeName: cfg.NodeName, HostIP: hostIP, PodsDir: podsDir,
		CgroupRoot: cfg.Edged.CgroupRoot, RelistPeriod: cfg.Edged.RelistPeriod.Duration,
		Logger: log.With("component", "edged"),
	})
	if err != nil {
		return fmt.Errorf("edged: %w", err)
	}
	start("prober", prober.Run)
	start("events", rep.Run)
	start("edged", r.Run)
	gc, err := imagegc.New(imagegc.Config{
		Runtime: rt.Runtime(), Images: rt.ImageService(),
		HighThresholdPercent: cfg.Edged.ImageGC.HighThresholdPercent,
		LowThresholdPercent:  cfg.Edged.ImageGC.LowThresholdPercent,
		MinAge:               cfg.Edged.ImageGC.MinAge.Duration,
		Keep:                 cfg.Edged.ImageGC.Keep,
		Logger:               log.With("component", "imagegc"),
	})
	if err != nil {
		return fmt.Errorf("edged.imageGC: %w", err)
	}
	start("imagegc", gc.Run)
	if static != nil {
		start("staticpods", static.Run)
	}

	if cfg.Edged.Server.Enable {
		srv, err := server.New(server.Config{
			Address:     cfg.Edged.Server.Address,
			AllowRemote: cfg.Edged.Server.AllowRemote,
			Runtime:     rt.Runtime(),
			Pods:        func() []*corev1.Pod { return storedPods(ctx, db, log) },
			NodeName:    cfg.NodeName,
			RootDir:     cfg.DataDir,
			Logger:      log.With("component", "edged-server"),
		})
		if err != nil {
			return fmt.Errorf("edged.server: %w", err)
		}
		start("edged-server", srv.Run)
	}
	return nil
}

// nodeInternalIP is the node's InternalIP as the node status reports it, or "" if it cannot
// be found in time.
func nodeInternalIP(ctx context.Context, node *nodestatus.Reporter) string {
	ctx, cancel := context.WithTimeout(ctx, hostIPWait)
	defer cancel()
	st, err := node.Status(ctx)
	if err != nil {
		return ""
	}
	for _, a := range st.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// storedPods decodes the pods the store holds, for the kubelet API's /pods.
func storedPods(ctx context.Context, db *store.DB, log *slog.Logger) []*corev1.Pod {
	objs, _, err := db.List(ctx, wire.TypePod, "")
	if err != nil {
		log.Warn("listing stored pods", "err", err)
		return nil
	}
	pods := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		var p corev1.Pod
		if err := json.Unmarshal(o.Content, &p); err != nil {
			log.Warn("stored pod does not decode", "key", o.Key.String(), "err", err)
			continue
		}
		pods = append(pods, &p)
	}
	return pods
}
