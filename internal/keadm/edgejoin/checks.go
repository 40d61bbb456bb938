package edgejoin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/skerry-io/skerry/edge/certs"
	"github.com/skerry-io/skerry/edge/config"
)

// Host check names, as --ignore-checks takes them.
const (
	checkRuntime  = "runtime"
	checkPorts    = "ports"
	checkCgroups  = "cgroups"
	checkNodeName = "node-name"
	checkDataDir  = "data-dir"
	checkCloud    = "cloud"
)

const (
	// runtimeCheckTimeout bounds the CRI Version call.
	runtimeCheckTimeout = 5 * time.Second
	// dialTimeout bounds each reachability probe of the cloud.
	dialTimeout = 3 * time.Second
)

// neededControllers are the cgroup v1 controllers Edged sets pod limits in.
var neededControllers = []string{"cpu", "memory", "pids"}

// checkResult is one host check's outcome.
type checkResult struct {
	Name   string
	Detail string // what was found, when ok
	Err    error  // why it failed
	Hint   string // what to do about it
}

// hostChecks runs every check against cfg; edgecoreRuns says our edgecore already runs (so
// the ports it holds are fine).
func hostChecks(ctx context.Context, o *Options, cfg *config.EdgeCore, edgecoreRuns bool) []checkResult {
	return []checkResult{
		runtimeCheck(ctx, o, cfg.Runtime.Endpoint),
		portsCheck(cfg, edgecoreRuns),
		cgroupsCheck(o.MountInfo),
		nodeNameCheck(cfg),
		dataDirCheck(cfg.DataDir),
		cloudCheck(ctx, o, cfg),
	}
}

func runtimeCheck(ctx context.Context, o *Options, endpoint string) checkResult {
	r := checkResult{Name: checkRuntime, Hint: "start the container runtime (containerd) or point --remote-runtime-endpoint at its CRI socket"}
	rt, err := o.Runtime(endpoint)
	if err != nil {
		r.Err = err
		return r
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(ctx, runtimeCheckTimeout)
	defer cancel()
	name, version, err := rt.Version(ctx)
	if err != nil {
		r.Err = fmt.Errorf("%s does not answer the CRI Version call: %w", endpoint, err)
		return r
	}
	r.Detail = fmt.Sprintf("%s %s at %s", name, version, endpoint)
	return r
}

// listenAddrs are the TCP addresses edgecore will listen on, with their config keys.
func listenAddrs(cfg *config.EdgeCore) [][2]string {
	var out [][2]string
	if cfg.MetaServer.Enable {
		out = append(out, [2]string{"metaServer.address", cfg.MetaServer.Address})
	}
	if cfg.Edged.Enable && cfg.Edged.Server.Enable {
		out = append(out, [2]string{"edged.server.address", cfg.Edged.Server.Address})
	}
	if cfg.EventBus.Enable && (cfg.EventBus.Mode == "internal" || cfg.EventBus.Mode == "both") {
		out = append(out, [2]string{"eventBus.internal.address", cfg.EventBus.Internal.Address})
	}
	return out
}

func portsCheck(cfg *config.EdgeCore, edgecoreRuns bool) checkResult {
	r := checkResult{Name: checkPorts}
	var free, busy []string
	for _, a := range listenAddrs(cfg) {
		key, addr := a[0], a[1]
		if _, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
			free = append(free, addr)
			continue
		}
		if errors.Is(err, syscall.EADDRINUSE) && edgecoreRuns {
			free = append(free, addr+" (held by the running edgecore)")
			continue
		}
		busy = append(busy, fmt.Sprintf("%s (%s): %v", addr, key, errors.Unwrap(err)))
		r.Hint = fmt.Sprintf("stop the program holding it, or move edgecore with --set %s=127.0.0.1:<port>", key)
	}
	if len(busy) > 0 {
		r.Err = fmt.Errorf("in use: %s", strings.Join(busy, "; "))
		return r
	}
	r.Detail = "free: " + strings.Join(free, ", ")
	if len(free) == 0 {
		r.Detail = "nothing to check (no fixed listen port)"
	}
	return r
}

func cgroupsCheck(mountInfo string) checkResult {
	r := checkResult{Name: checkCgroups, Hint: "edged places pods in cgroup v1 (cgroupfs); mount the cpu, memory and pids controllers read-write under /sys/fs/cgroup"}
	mounts, err := readMountInfo(mountInfo)
	if err != nil {
		r.Err = err
		return r
	}
	found := map[string]mount{}
	unified := false
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup":
			for _, c := range neededControllers {
				if hasOption(m.Super, c) {
					found[c] = m
				}
			}
		case "cgroup2":
			unified = true
		}
	}
	var missing, readOnly []string
	for _, c := range neededControllers {
		m, ok := found[c]
		switch {
		case !ok:
			missing = append(missing, c)
		case !hasOption(m.Options, "rw"):
			readOnly = append(readOnly, c+" at "+m.Point)
		}
	}
	switch {
	case len(missing) > 0 && unified && len(found) == 0:
		r.Err = errors.New("only the cgroup v2 (unified) hierarchy is mounted; edged needs cgroup v1")
		r.Hint = "boot with systemd.unified_cgroup_hierarchy=0 (cgroup v1), or skip with --ignore-checks cgroups and run pods without limits at your own risk"
	case len(missing) > 0:
		r.Err = fmt.Errorf("cgroup v1 controllers not mounted: %s", strings.Join(missing, ", "))
	case len(readOnly) > 0:
		r.Err = fmt.Errorf("cgroup v1 controllers mounted read-only: %s", strings.Join(readOnly, ", "))
	default:
		pts := make([]string, 0, len(neededControllers))
		for _, c := range neededControllers {
			pts = append(pts, found[c].Point)
		}
		r.Detail = "v1 " + strings.Join(slices.Compact(pts), ", ")
	}
	return r
}

// nodeNameCheck: the name is valid (BuildConfig made sure), and a certificate already in the
// data dir is for this name; a node cannot change its name in place.
func nodeNameCheck(cfg *config.EdgeCore) checkResult {
	r := checkResult{Name: checkNodeName, Detail: cfg.NodeName}
	cert, err := existingCertNode(cfg.DataDir)
	if err == nil && cert != "" && cert != cfg.NodeName {
		r.Err = fmt.Errorf("%s holds the certificate of node %q, not %q", certs.Dir(cfg.DataDir), cert, cfg.NodeName)
		r.Hint = fmt.Sprintf("join as --edgenode-name %s, or remove that node first with `keadm reset edge`", cert)
	}
	return r
}

// existingCertNode returns the node name of the certificate stored in dataDir, "" if none.
func existingCertNode(dataDir string) (string, error) {
	c, err := certs.Load(dataDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	return strings.TrimPrefix(c.Node.Cert.Subject.CommonName, "system:node:"), nil
}

// dataDirCheck: the data dir, or the nearest directory above it that exists, is writable.
func dataDirCheck(dir string) checkResult {
	r := checkResult{Name: checkDataDir, Hint: "run keadm join as root, or choose another directory with --set dataDir=/path"}
	p := dir
	for {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				r.Err = fmt.Errorf("%s is not a directory", p)
				return r
			}
			break
		}
		if (!errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR)) || filepath.Dir(p) == p {
			r.Err = err
			return r
		}
		p = filepath.Dir(p)
	}
	f, err := os.CreateTemp(p, ".keadm-check-*")
	if err != nil {
		r.Err = fmt.Errorf("%s is not writable: %w", p, err)
		return r
	}
	f.Close()
	os.Remove(f.Name())
	r.Detail = dir
	if p != dir {
		r.Detail += " (will be created)"
	}
	return r
}

// cloudCheck dials the hub (TCP for websocket; QUIC is UDP, which a dial cannot prove) and the
// bootstrap port.
func cloudCheck(ctx context.Context, o *Options, cfg *config.EdgeCore) checkResult {
	r := checkResult{Name: checkCloud, Hint: "check --cloudcore-ipport, that cloudcore runs, and that firewalls let TCP 10000 and 10002 through"}
	targets := []string{cfg.Hub.BootstrapAddr()}
	if cfg.Hub.Protocol == config.ProtocolWebSocket {
		targets = append([]string{cfg.Hub.Server}, targets...)
	}
	var ok, bad []string
	for _, t := range targets {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		c, err := o.Dial(dctx, "tcp", t)
		cancel()
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", t, err))
			continue
		}
		c.Close()
		ok = append(ok, t)
	}
	if len(bad) > 0 {
		r.Err = fmt.Errorf("cannot reach %s", strings.Join(bad, "; "))
		return r
	}
	r.Detail = "reached " + strings.Join(ok, ", ")
	if cfg.Hub.Protocol == config.ProtocolQUIC {
		r.Detail += " (QUIC hub " + cfg.Hub.Server + " is UDP: not probed)"
	}
	return r
}

// report prints the results and returns an error naming the failed checks not ignored.
func report(p *progress, results []checkResult, ignore []string) error {
	var failed []string
	for _, r := range results {
		switch {
		case r.Err == nil:
			p.detail("%-10s ok       %s", r.Name, r.Detail)
		case slices.Contains(ignore, r.Name) || slices.Contains(ignore, "all"):
			p.detail("%-10s WARNING  %v (ignored)", r.Name, r.Err)
		default:
			p.detail("%-10s FAILED   %v", r.Name, r.Err)
			if r.Hint != "" {
				p.detail("%-10s          hint: %s", "", r.Hint)
			}
			failed = append(failed, r.Name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("host checks failed: %s (fix them, or skip with --ignore-checks %s)", strings.Join(failed, ", "), strings.Join(failed, ","))
	}
	return nil
}
