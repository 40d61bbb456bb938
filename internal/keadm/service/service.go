// Package service runs a Skerry daemon (cloudcore, edgecore) as a host service: a systemd unit
// where systemd runs, else a detached process tracked by a pid file. keadm init --mode process
// and keadm join start it; keadm reset stops and removes it.
package service

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Kinds of Handle.
const (
	KindSystemd = "systemd"
	KindProcess = "process"
)

// Spec describes one service.
type Spec struct {
	// Name is the systemd unit name and the pid/log file base name ("cloudcore", "edgecore").
	Name string
	// Binary is the absolute path of the executable.
	Binary string
	Args   []string
	// StateDir holds <Name>.pid and <Name>.log when there is no systemd.
	StateDir string
}

// Handle says how a started service runs.
type Handle struct {
	Kind    string // KindSystemd or KindProcess
	Unit    string // the unit file, for systemd
	PID     int
	LogPath string // the log file, for a process; "" for systemd (journalctl -u <Name>)
}

// String is a one-line description for keadm's summaries.
func (h Handle) String() string {
	if h.Kind == KindSystemd {
		name := strings.TrimSuffix(filepath.Base(h.Unit), ".service")
		return fmt.Sprintf("systemd unit %s (pid %d; logs: journalctl -u %s)", h.Unit, h.PID, name)
	}
	return fmt.Sprintf("process %d (log %s)", h.PID, h.LogPath)
}

// host is where the service goes; tests point it at temp dirs and a fake systemctl.
type host struct {
	systemdRunDir string // exists when systemd is PID 1's init
	unitDir       string
	// run runs systemctl/journalctl with an argument list and returns its combined output.
	run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

var defaultHost = host{systemdRunDir: "/run/systemd/system", unitDir: "/etc/systemd/system", run: runCommand}

// Start installs and starts the service. Starting a service that already runs restarts it.
func Start(ctx context.Context, s Spec) (Handle, error) { return defaultHost.start(ctx, s) }

// Running reports whether the service runs. For a process, the pid file must name a live,
// non-zombie process running Binary.
func Running(s Spec) (bool, error) { return defaultHost.running(context.Background(), s) }

// Stop stops the service: SIGTERM to its process group, SIGKILL when ctx ends first (after
// DefaultStopGrace when ctx has no deadline).
// A service that does not run is not an error.
func Stop(ctx context.Context, s Spec) error { return defaultHost.stop(ctx, s) }

// Remove stops the service and removes its unit (or pid file) and log.
func Remove(ctx context.Context, s Spec) error { return defaultHost.remove(ctx, s) }

// LogTail returns the last lines of the service's log.
func LogTail(s Spec, lines int) (string, error) {
	return defaultHost.logTail(context.Background(), s, lines)
}

func (s Spec) validate() error {
	if msgs := validation.IsDNS1123Label(s.Name); len(msgs) > 0 {
		return fmt.Errorf("service name %q: %s", s.Name, strings.Join(msgs, "; "))
	}
	if !filepath.IsAbs(s.Binary) {
		return fmt.Errorf("service %s: binary %q: want an absolute path", s.Name, s.Binary)
	}
	if !filepath.IsAbs(s.StateDir) {
		return fmt.Errorf("service %s: state dir %q: want an absolute path", s.Name, s.StateDir)
	}
	return nil
}

func (s Spec) pidPath() string { return filepath.Join(s.StateDir, s.Name+".pid") }
func (s Spec) logPath() string { return filepath.Join(s.StateDir, s.Name+".log") }

func (h host) systemd() bool {
	fi, err := os.Stat(h.systemdRunDir)
	return err == nil && fi.IsDir()
}

func (h host) unitPath(s Spec) string { return filepath.Join(h.unitDir, s.Name+".service") }

// installed reports whether s was installed as a unit (so stop/remove use systemctl).
func (h host) installed(s Spec) bool {
	_, err := os.Stat(h.unitPath(s))
	return err == nil
}

func (h host) start(ctx context.Context, s Spec) (Handle, error) {
	if err := s.validate(); err != nil {
		return Handle{}, err
	}
	if h.systemd() {
		return h.startUnit(ctx, s)
	}
	return startProcess(ctx, s)
}

func (h host) running(ctx context.Context, s Spec) (bool, error) {
	if err := s.validate(); err != nil {
		return false, err
	}
	if h.installed(s) && h.systemd() {
		out, err := h.run(ctx, "systemctl", "is-active", s.Name+".service")
		state := strings.TrimSpace(string(out))
		if err != nil && state == "" {
			return false, fmt.Errorf("systemctl is-active %s: %w", s.Name, err)
		}
		return state == "active" || state == "activating" || state == "reloading", nil
	}
	pid, err := processPID(s)
	return pid > 0, err
}

func (h host) stop(ctx context.Context, s Spec) error {
	if err := s.validate(); err != nil {
		return err
	}
	if h.installed(s) && h.systemd() {
		if out, err := h.run(ctx, "systemctl", "stop", s.Name+".service"); err != nil {
			return fmt.Errorf("systemctl stop %s: %w: %s", s.Name, err, strings.TrimSpace(string(out)))
		}
	}
	return stopProcess(ctx, s)
}

func (h host) remove(ctx context.Context, s Spec) error {
	if err := h.stop(ctx, s); err != nil {
		return err
	}
	var errs []error
	if h.installed(s) {
		if h.systemd() {
			if out, err := h.run(ctx, "systemctl", "disable", s.Name+".service"); err != nil {
				errs = append(errs, fmt.Errorf("systemctl disable %s: %w: %s", s.Name, err, strings.TrimSpace(string(out))))
			}
		}
		if err := os.Remove(h.unitPath(s)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		if h.systemd() {
			if out, err := h.run(ctx, "systemctl", "daemon-reload"); err != nil {
				errs = append(errs, fmt.Errorf("systemctl daemon-reload: %w: %s", err, strings.TrimSpace(string(out))))
			}
		}
	}
	for _, p := range []string{s.pidPath(), s.logPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (h host) logTail(ctx context.Context, s Spec, lines int) (string, error) {
	if err := s.validate(); err != nil {
		return "", err
	}
	lines = min(max(lines, 1), maxTailLines)
	if h.installed(s) && h.systemd() {
		out, err := h.run(ctx, "journalctl", "-u", s.Name+".service", "-n", fmt.Sprint(lines), "--no-pager", "-o", "cat")
		if err != nil {
			return "", fmt.Errorf("journalctl -u %s: %w", s.Name, err)
		}
		return lastLines(out, lines), nil
	}
	return tailFile(s.logPath(), lines)
}
