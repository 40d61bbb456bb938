package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// maxPIDFile bounds the pid file read: a pid is a few digits.
	maxPIDFile = 64
	// maxStatFile bounds a /proc/<pid>/stat or cmdline read.
	maxStatFile = 64 << 10
	// maxTailBytes bounds how much of the end of a log LogTail reads.
	maxTailBytes = 256 << 10
	maxTailLines = 2000
	// pollInterval is how often Stop looks whether the process is gone.
	pollInterval = 50 * time.Millisecond
	// DefaultStopGrace is how long Stop waits after SIGTERM when ctx has no deadline.
	DefaultStopGrace = 15 * time.Second
	// killGrace is how long Stop waits after SIGKILL before it gives up.
	killGrace = 5 * time.Second
)

// startProcess starts s detached: its own session and process group, stdin /dev/null, output
// appended to its log, pid in its pid file. A running instance is stopped first.
func startProcess(ctx context.Context, s Spec) (Handle, error) {
	if err := stopProcess(ctx, s); err != nil {
		return Handle{}, fmt.Errorf("restart %s: %w", s.Name, err)
	}
	if err := os.MkdirAll(s.StateDir, 0o755); err != nil {
		return Handle{}, fmt.Errorf("create %s: %w", s.StateDir, err)
	}
	log, err := os.OpenFile(s.logPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return Handle{}, fmt.Errorf("open %s log: %w", s.Name, err)
	}
	defer log.Close() // the child holds its own copy
	// Not CommandContext: the service must outlive ctx and keadm.
	cmd := exec.Command(s.Binary, s.Args...)
	cmd.Stdin = nil // /dev/null
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = "/" // hold no directory (or mount) busy
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Handle{}, fmt.Errorf("start %s: %w", s.Name, err)
	}
	pid := cmd.Process.Pid
	// keadm never waits for it: when keadm exits, init adopts it.
	_ = cmd.Process.Release()
	if err := writeFileAtomic(s.pidPath(), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return Handle{}, err
	}
	return Handle{Kind: KindProcess, PID: pid, LogPath: s.logPath()}, nil
}

// processPID returns the pid the pid file names when that process is alive and runs
// s.Binary; 0 otherwise (no file, gone, a zombie, or a pid reused by another program).
func processPID(s Spec) (int, error) {
	b, err := readLimited(s.pidPath(), maxPIDFile)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pid file %s: want a process id, got %q", s.pidPath(), strings.TrimSpace(string(b)))
	}
	if !alive(pid) || !runs(pid, s.Binary) {
		return 0, nil
	}
	return pid, nil
}

// alive reports whether pid exists and is not a zombie. Here PID 1 may never reap orphans, so
// a dead service can stay in the process table as a zombie for ever.
func alive(pid int) bool {
	st, err := procState(pid)
	return err == nil && st != 'Z' && st != 'X' && st != 'x'
}

// procState returns the state letter of /proc/<pid>/stat.
func procState(pid int) (byte, error) {
	b, err := readLimited(fmt.Sprintf("/proc/%d/stat", pid), maxStatFile)
	if err != nil {
		return 0, err
	}
	return parseStatState(b)
}

// parseStatState reads the state field, which follows the command name in parentheses; the
// name may itself hold spaces and parentheses, so the last ')' ends it.
func parseStatState(b []byte) (byte, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) || b[i+1] != ' ' {
		return 0, errors.New("malformed /proc stat")
	}
	return b[i+2], nil
}

// runs reports whether pid executes binary: its /proc/<pid>/exe, or failing that argv[0].
func runs(pid int, binary string) bool {
	want := resolve(binary)
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		// A binary replaced on disk (an upgrade) still names the old path.
		exe = strings.TrimSuffix(exe, " (deleted)")
		return exe == want || exe == binary
	}
	b, err := readLimited(fmt.Sprintf("/proc/%d/cmdline", pid), maxStatFile)
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(b, []byte{0})
	return string(argv0) == binary || resolve(string(argv0)) == want
}

func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// stopProcess ends the process group of s: SIGTERM, then SIGKILL when ctx ends (or after
// DefaultStopGrace), then removes the pid file.
func stopProcess(ctx context.Context, s Spec) error {
	pid, err := processPID(s)
	if err != nil {
		return err
	}
	if pid == 0 {
		return removeIfExists(s.pidPath())
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStopGrace)
		defer cancel()
	}
	signalGroup(pid, syscall.SIGTERM)
	if !waitGone(ctx, pid) {
		signalGroup(pid, syscall.SIGKILL)
		kctx, cancel := context.WithTimeout(context.Background(), killGrace)
		defer cancel()
		if !waitGone(kctx, pid) {
			return fmt.Errorf("%s (pid %d) survived SIGKILL for %s", s.Name, pid, killGrace)
		}
	}
	return removeIfExists(s.pidPath())
}

// signalGroup signals the process group led by pid (the service and anything it forked), or
// pid alone if it no longer leads a group.
func signalGroup(pid int, sig syscall.Signal) {
	if err := syscall.Kill(-pid, sig); err != nil {
		_ = syscall.Kill(pid, sig)
	}
}

// waitGone polls until pid is dead (or a zombie) or ctx ends; it reports whether it died.
func waitGone(ctx context.Context, pid int) bool {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if !alive(pid) {
			return true
		}
		select {
		case <-ctx.Done():
			return !alive(pid)
		case <-t.C:
		}
	}
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// readLimited reads at most limit bytes of path.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// tailFile returns the last n lines of the file at path, reading at most maxTailBytes.
func tailFile(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read log: %w", err)
	}
	off := max(fi.Size()-maxTailBytes, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, maxTailBytes))
	if err != nil {
		return "", fmt.Errorf("read log %s: %w", path, err)
	}
	if off > 0 {
		// The first line is cut; drop it.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return lastLines(b, n), nil
}

// lastLines returns the last n lines of b, ending in a newline when b has any.
func lastLines(b []byte, n int) string {
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return ""
	}
	i := len(b)
	for k := 0; k < n; k++ {
		j := bytes.LastIndexByte(b[:i], '\n')
		if j < 0 {
			return string(b) + "\n"
		}
		i = j
	}
	return string(b[i+1:]) + "\n"
}
