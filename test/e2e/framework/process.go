package framework

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is one of our binaries running under a test: its output is kept (and shown when the
// test fails), and it is stopped with SIGTERM when the test ends.
type Process struct {
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer // stdout and stderr interleaved
	stdout *syncBuffer
	done   chan struct{}
	err    error
}

// Binary returns the path of one of our binaries built by `make build`.
func (e *Env) Binary(name string) string {
	return filepath.Join(e.Root, "_output", "bin", name)
}

// Start runs binary with fixed args. The test fails at cleanup if the process had to be killed.
func (e *Env) Start(t *testing.T, binary string, args ...string) *Process {
	t.Helper()
	path := e.Binary(binary)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s not built (run make build): %v", path, err)
	}
	p := &Process{name: binary, cmd: exec.Command(path, args...), out: &syncBuffer{}, stdout: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = io.MultiWriter(p.out, p.stdout), p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop(t)
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", binary, p.Output())
		}
	})
	return p
}

// Stop sends SIGTERM and waits up to 20 s for a clean exit, then kills. Safe to call twice.
func (p *Process) Stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not stop within 20s of SIGTERM", p.name)
	}
}

// Exited reports whether the process has ended, and its error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stdout is what the process printed on standard output.
func (p *Process) Stdout() string { return p.stdout.String() }

// Output is everything the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// String names the process for messages.
func (p *Process) String() string { return fmt.Sprintf("%s (pid %d)", p.name, p.cmd.Process.Pid) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
