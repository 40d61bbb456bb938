package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/cmd/edgesim/sim"
	"github.com/skerry-io/skerry/pkg/pki"
)

// status is what `serve` answers on GET /status.
type status struct {
	Connected  int    `json:"connected"`
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
	VmRSSKB    uint64 `json:"vmrss_kb"`
}

// vmRSS reads VmRSS (kB) from /proc/<pid>/status ("self" for this process).
func vmRSS(pid string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in " + pid + "/status")
}

func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: benchmarks listen on loopback addresses only", addr)
	}
	return nil
}

// serve runs a hub alone in this process (so its RSS is the hub's) with the CA in --dir, and
// a status endpoint, until SIGINT/SIGTERM.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "directory holding ca.crt and ca.key (required)")
	wsAddr := fs.String("ws", "127.0.0.1:10100", "WebSocket listen address")
	quicAddr := fs.String("quic", "127.0.0.1:10101", "QUIC listen address")
	statusAddr := fs.String("status", "127.0.0.1:10199", "status endpoint (GET /status[?gc=1])")
	maxNodes := fs.Int("max-nodes", 10000, "hub MaxNodes")
	_ = fs.Parse(args)
	for _, a := range []string{*wsAddr, *quicAddr, *statusAddr} {
		if err := loopback(a); err != nil {
			return err
		}
	}
	if _, _, err := sim.RaiseNoFileLimit(); err != nil {
		return err
	}
	ca, err := pki.LoadCA(filepath.Join(*dir, "ca.crt"), filepath.Join(*dir, "ca.key"))
	if err != nil {
		return err
	}
	r, err := startRig(ca, hub.Config{MaxNodes: *maxNodes}, *wsAddr, *quicAddr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Query().Get("gc") == "1" {
			runtime.GC()
			debug.FreeOSMemory()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss, _ := vmRSS("self")
		_ = json.NewEncoder(w).Encode(status{
			Connected: r.obs.count(), HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, Sys: ms.Sys,
			Goroutines: runtime.NumGoroutine(), VmRSSKB: rss,
		})
	})
	ln, err := net.Listen("tcp", *statusAddr)
	if err != nil {
		_ = r.stop()
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "hubbench serve: ws %s quic %s status %s\n", r.wsAddr, r.quicAddr, ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-r.done: // the hub failed on its own
		_ = hs.Close()
		return err
	}
	_ = hs.Close()
	return r.stop()
}

// writeCA creates a CA and writes it to --dir/ca.crt and --dir/ca.key, for running serve and
// edgesim by hand.
func writeCA(args []string) error {
	fs := flag.NewFlagSet("ca", flag.ExitOnError)
	dir := fs.String("dir", "", "directory to write ca.crt and ca.key to (required)")
	_ = fs.Parse(args)
	if *dir == "" {
		return errors.New("--dir is required")
	}
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "hubbench-ca"})
	if err != nil {
		return err
	}
	return pki.WriteKeyPair(filepath.Join(*dir, "ca.crt"), filepath.Join(*dir, "ca.key"), &ca.KeyPair)
}
