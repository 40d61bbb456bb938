package service

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play keadm: started with SERVICE_TEST_START=<spec json>, it
// starts the service and exits, so the service is orphaned as it is in real use.
func TestMain(m *testing.M) {
	if js := os.Getenv("SERVICE_TEST_START"); js != "" {
		var s Spec
		if err := json.Unmarshal([]byte(js), &s); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		h, err := Start(context.Background(), s)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(h.PID)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found: %v", name, err)
	}
	p, err = filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sleepSpec(t *testing.T) Spec {
	return Spec{Name: "svc", Binary: lookPath(t, "sleep"), Args: []string{"300"}, StateDir: t.TempDir()}
}

// eventually fails the test unless cond holds before the deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustRunning(t *testing.T, s Spec, want bool) {
	t.Helper()
	got, err := Running(s)
	if err != nil {
		t.Fatalf("Running: %v", err)
	}
	if got != want {
		t.Fatalf("Running = %v, want %v", got, want)
	}
}

// statFields returns the fields of /proc/<pid>/stat after the command name.
func statFields(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
}

func TestProcessLifecycle(t *testing.T) {
	s := sleepSpec(t)
	mustRunning(t, s, false)
	h, err := Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Stop(context.Background(), s) })
	if h.Kind != KindProcess || h.PID <= 0 || h.LogPath != filepath.Join(s.StateDir, "svc.log") {
		t.Fatalf("handle %+v", h)
	}
	mustRunning(t, s, true)
	pidFile, err := os.ReadFile(filepath.Join(s.StateDir, "svc.pid"))
	if err != nil || strings.TrimSpace(string(pidFile)) != strconv.Itoa(h.PID) {
		t.Fatalf("pid file %q (%v), want %d", pidFile, err, h.PID)
	}
	// Detached: its own session and process group (fields 4 and 5: pgrp, session).
	f := statFields(t, h.PID)
	if f[2] != strconv.Itoa(h.PID) || f[3] != strconv.Itoa(h.PID) {
		t.Fatalf("pgrp %s session %s, want both %d", f[2], f[3], h.PID)
	}
	if fd0, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", h.PID)); err != nil || fd0 != os.DevNull {
		t.Fatalf("stdin %q (%v), want %s", fd0, err, os.DevNull)
	}

	// Starting again restarts: a new process, the old one gone.
	h2, err := Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if h2.PID == h.PID || alive(h.PID) {
		t.Fatalf("restart kept pid %d (new %d)", h.PID, h2.PID)
	}
	mustRunning(t, s, true)

	if err := Stop(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	// The test process never waits for it (Start released it), so it stays a zombie of ours:
	// that counts as not running.
	mustRunning(t, s, false)
	if _, err := os.Stat(filepath.Join(s.StateDir, "svc.pid")); !os.IsNotExist(err) {
		t.Fatalf("pid file left after Stop: %v", err)
	}
	if err := Stop(context.Background(), s); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := Remove(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.LogPath); !os.IsNotExist(err) {
		t.Fatalf("log left after Remove: %v", err)
	}
	if err := Remove(context.Background(), s); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestOrphanZombieIsNotRunning(t *testing.T) {
	s := sleepSpec(t)
	js, _ := json.Marshal(s)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SERVICE_TEST_START="+string(js))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("helper printed %q", out)
	}
	t.Cleanup(func() { _ = Stop(context.Background(), s) })
	// Its parent exited: it was adopted (by PID 1 or a subreaper), not by us.
	if ppid := statFields(t, pid)[1]; ppid == strconv.Itoa(os.Getpid()) {
		t.Fatalf("service parent is the test process")
	}
	mustRunning(t, s, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
	mustRunning(t, s, false)
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	s := Spec{Name: "stubborn", Binary: lookPath(t, "sh"), StateDir: t.TempDir(),
		Args: []string{"-c", `trap "" TERM; echo ready; while :; do sleep 1; done`}}
	h, err := Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the trap to be set", func() bool {
		tail, _ := LogTail(s, 1)
		return tail == "ready\n"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := Stop(ctx, s); err != nil {
		t.Fatal(err)
	}
	if alive(h.PID) {
		t.Fatalf("pid %d still alive", h.PID)
	}
	mustRunning(t, s, false)
}

func TestRunningIgnoresReusedPID(t *testing.T) {
	s := sleepSpec(t)
	// The pid file names a live process that is not the service's binary (this test).
	if err := os.WriteFile(filepath.Join(s.StateDir, "svc.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRunning(t, s, false)
	// Stop must not signal it.
	if err := Stop(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func TestRunningBadPIDFile(t *testing.T) {
	s := sleepSpec(t)
	if err := os.WriteFile(filepath.Join(s.StateDir, "svc.pid"), []byte("not a pid"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Running(s); err == nil || !strings.Contains(err.Error(), "svc.pid") {
		t.Fatalf("err %v, want one naming the pid file", err)
	}
}

func TestSpecValidation(t *testing.T) {
	for _, s := range []Spec{
		{Name: "Edge Core", Binary: "/bin/true", StateDir: "/tmp"},
		{Name: "edgecore", Binary: "edgecore", StateDir: "/tmp"},
		{Name: "edgecore", Binary: "/bin/true", StateDir: "state"},
	} {
		if _, err := Start(context.Background(), s); err == nil {
			t.Errorf("Start(%+v) succeeded", s)
		}
	}
}

func TestLogTail(t *testing.T) {
	s := sleepSpec(t)
	var b strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(s.logPath(), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LogTail(s, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := "line 99997\nline 99998\nline 99999\n"; got != want {
		t.Fatalf("tail %q, want %q", got, want)
	}
	// More lines than fit in the read window: whole lines only.
	got, _ = LogTail(s, maxTailLines)
	if !strings.HasPrefix(got, "line ") || len(got) > maxTailBytes {
		t.Fatalf("tail starts %q (%d bytes)", got[:20], len(got))
	}
	if _, err := LogTail(Spec{Name: "none", Binary: "/bin/true", StateDir: t.TempDir()}, 3); err == nil {
		t.Fatal("LogTail of a missing log succeeded")
	}
}

func TestLastLines(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a", 3, "a\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 5, "a\nb\nc\n"},
		{"a\nb\n\n\n", 1, "b\n"},
	} {
		if got := lastLines([]byte(c.in), c.n); got != c.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestParseStatState(t *testing.T) {
	st, err := parseStatState([]byte("42 (we) ird) Z 1 42 42 0"))
	if err != nil || st != 'Z' {
		t.Fatalf("state %q, %v", st, err)
	}
	for _, bad := range []string{"", "42 (x", "42 (x)", "42 (x)Z"} {
		if _, err := parseStatState([]byte(bad)); err == nil {
			t.Errorf("parseStatState(%q) succeeded", bad)
		}
	}
}

func FuzzParseStatState(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0"))
	f.Add([]byte("7 (a) b) R"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if st, err := parseStatState(b); err == nil && st == 0 && !strings.Contains(string(b), ") \x00") {
			t.Fatalf("zero state without error for %q", b)
		}
	})
}

func FuzzLastLines(f *testing.F) {
	f.Add([]byte("a\nb\nc\n"), 2)
	f.Add([]byte("\n\n"), 0)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		n = min(max(n%50, 0)+1, 50)
		got := lastLines(b, n)
		if got != "" && (!strings.HasSuffix(got, "\n") || strings.Count(got, "\n") > n) {
			t.Fatalf("lastLines(%q, %d) = %q", b, n, got)
		}
		if !strings.HasSuffix(strings.TrimRight(string(b), "\n"), strings.TrimRight(got, "\n")) {
			t.Fatalf("lastLines(%q, %d) = %q is not a suffix", b, n, got)
		}
	})
}
