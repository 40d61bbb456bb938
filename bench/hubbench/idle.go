package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/skerry-io/skerry/cmd/edgesim/sim"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/transport"
)

// child is a started subprocess that dies with us (Pdeathsig) and is stopped with SIGTERM.
type child struct {
	cmd     *exec.Cmd
	done    chan error
	once    sync.Once
	stopErr error
}

func startChild(stdout *bytes.Buffer, name string, args ...string) (*child, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	return c, nil
}

// stop sends SIGTERM and waits up to 30 s, then kills. Later calls return the first result.
func (c *child) stop() error {
	c.once.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case c.stopErr = <-c.done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
			c.stopErr = errors.New(c.cmd.Path + ": did not stop within 30s, killed")
		}
	})
	return c.stopErr
}

func getStatus(addr string, gc bool) (status, error) {
	url := "http://" + addr + "/status"
	if gc {
		url += "?gc=1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return status{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return status{}, err
	}
	defer resp.Body.Close()
	var st status
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitConnected polls the hub until want nodes are connected; the time is when it saw them.
func waitConnected(addr string, want int, limit time.Duration) (time.Time, error) {
	var last status
	ok := waitUntil(limit, func() bool {
		st, err := getStatus(addr, false)
		last = st
		return err == nil && st.Connected >= want
	})
	if !ok {
		return time.Time{}, fmt.Errorf("hub has %d of %d nodes connected after %s", last.Connected, want, limit)
	}
	return time.Now(), nil
}

// idle measures the hub process's memory per idle connected node and the time every node
// needs to reconnect after the hub process restarts. The hub (`hubbench serve`) and the edges
// (`edgesim`) run as separate processes, so the hub's VmRSS is its own.
func idle(args []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	nodes := fs.Int("nodes", 1000, "idle nodes")
	protocol := fs.String("protocol", transport.ProtocolWebSocket, "websocket or quic")
	edgesim := fs.String("edgesim", filepath.Join(filepath.Dir(self), "edgesim"), "edgesim binary")
	rate := fs.Float64("connect-rate", 500, "edgesim --connect-rate (reconnects included)")
	settle := fs.Duration("settle", 5*time.Second, "wait after all connected before measuring")
	wsAddr := fs.String("ws", "127.0.0.1:10100", "hub WebSocket address")
	quicAddr := fs.String("quic", "127.0.0.1:10101", "hub QUIC address")
	statusAddr := fs.String("status", "127.0.0.1:10199", "hub status address")
	restart := fs.Bool("restart", true, "also measure reconnection after a hub restart")
	_ = fs.Parse(args)
	if _, _, err := sim.RaiseNoFileLimit(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "hubbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "hubbench-ca"})
	if err != nil {
		return err
	}
	caCert, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := pki.WriteKeyPair(caCert, caKey, &ca.KeyPair); err != nil {
		return err
	}
	serveArgs := []string{"serve", "--dir", dir, "--ws", *wsAddr, "--quic", *quicAddr, "--status", *statusAddr, "--max-nodes", strconv.Itoa(*nodes + 10)}
	startHub := func() (*child, error) {
		h, err := startChild(nil, self, serveArgs...)
		if err != nil {
			return nil, err
		}
		if !waitUntil(20*time.Second, func() bool { _, err := getStatus(*statusAddr, false); return err == nil }) {
			_ = h.stop()
			return nil, errors.New("hub did not answer its status endpoint within 20s")
		}
		return h, nil
	}
	hubProc, err := startHub()
	if err != nil {
		return err
	}
	defer func() { _ = hubProc.stop() }()
	pid := strconv.Itoa(hubProc.cmd.Process.Pid)
	before, err := getStatus(*statusAddr, true)
	if err != nil {
		return err
	}
	rssBefore, err := vmRSS(pid)
	if err != nil {
		return err
	}

	server := *wsAddr
	if *protocol == transport.ProtocolQUIC {
		server = *quicAddr
	}
	var simOut bytes.Buffer
	t0 := time.Now()
	edges, err := startChild(&simOut, *edgesim, "--nodes", strconv.Itoa(*nodes), "--prefix", "idle", "--server", server,
		"--protocol", *protocol, "--ca-cert", caCert, "--ca-key", caKey, "--connect-rate", strconv.FormatFloat(*rate, 'f', -1, 64),
		"--duration", "10m", "--json")
	if err != nil {
		return err
	}
	defer func() { _ = edges.stop() }()
	allAt, err := waitConnected(*statusAddr, *nodes, 3*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("idle protocol=%s nodes=%d: all connected %.1f s after edgesim started (connect-rate %g/s)\n", *protocol, *nodes, allAt.Sub(t0).Seconds(), *rate)
	time.Sleep(*settle)
	after, err := getStatus(*statusAddr, true)
	if err != nil {
		return err
	}
	rssAfter, err := vmRSS(pid)
	if err != nil {
		return err
	}
	n := float64(*nodes)
	fmt.Printf("  hub VmRSS: %d kB before, %d kB with %d idle nodes: %.1f kB per node\n", rssBefore, rssAfter, *nodes, float64(int64(rssAfter)-int64(rssBefore))/n)
	fmt.Printf("  hub heap in use (after GC): %.1f MB before, %.1f MB after: %.1f kB per node; goroutines %d → %d\n",
		float64(before.HeapInuse)/1e6, float64(after.HeapInuse)/1e6, (float64(after.HeapInuse)-float64(before.HeapInuse))/1024/n, before.Goroutines, after.Goroutines)

	if *restart {
		tStop := time.Now()
		if err := hubProc.stop(); err != nil {
			return fmt.Errorf("stopping hub: %w", err)
		}
		stopped := time.Since(tStop)
		tStart := time.Now()
		if hubProc, err = startHub(); err != nil {
			return err
		}
		allBack, err := waitConnected(*statusAddr, *nodes, 2*time.Minute)
		if err != nil {
			return err
		}
		fmt.Printf("  restart: hub stopped in %.2f s; all %d nodes reconnected %.2f s after the new hub process started (%.2f s after the stop began)\n",
			stopped.Seconds(), *nodes, allBack.Sub(tStart).Seconds(), allBack.Sub(tStop).Seconds())
	}
	if err := edges.stop(); err != nil {
		return fmt.Errorf("edgesim: %w", err)
	}
	var rep sim.Report
	if err := json.Unmarshal(simOut.Bytes(), &rep); err != nil {
		return fmt.Errorf("edgesim report: %w", err)
	}
	fmt.Printf("  edgesim: connected %d failed %d reconnects %d connect p50 %.1f ms p99 %.1f ms max %.1f ms errors %v\n",
		rep.Connected, rep.Failed, rep.Reconnects, ms(rep.ConnectP50), ms(rep.ConnectP99), ms(rep.ConnectMax), rep.Errors)
	return nil
}
