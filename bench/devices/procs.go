package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a child (cloudcore, edgecore) with its output in a log file.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan error
	log  string
}

func startProcess(name, logPath, bin string, args ...string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	// Not CommandContext: stop sends SIGTERM and waits, whatever the context.
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { p.done <- cmd.Wait(); _ = logf.Close() }()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports an error if the process has ended.
func (p *process) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s exited: %v (see %s)", p.name, err, p.log)
	default:
		return nil
	}
}

// stop sends SIGTERM and waits up to 30 s, then kills.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(30 * time.Second):
		progress("%s did not stop within 30 s of SIGTERM: killing it", p.name)
		_ = p.cmd.Process.Kill()
		p.done <- <-p.done
	}
}

func httpOK(url string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// poll calls cond every 20 ms until it is true, fails, or timeout passes.
func poll(ctx context.Context, what string, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// memory is a process's resident memory from /proc/<pid>/status, in kB.
type memory struct {
	VmRSS   int64 `json:"vmRSSkB"`
	RssAnon int64 `json:"rssAnonkB"`
	RssFile int64 `json:"rssFilekB"`
	VmHWM   int64 `json:"vmHWMkB"`
}

func (m memory) String() string {
	return fmt.Sprintf("VmRSS %.1f MB (RssAnon %.1f, RssFile %.1f; VmHWM %.1f)",
		float64(m.VmRSS)/1000, float64(m.RssAnon)/1000, float64(m.RssFile)/1000, float64(m.VmHWM)/1000)
}

func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	fields := map[string]*int64{"VmRSS:": &m.VmRSS, "RssAnon:": &m.RssAnon, "RssFile:": &m.RssFile, "VmHWM:": &m.VmHWM}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 {
			if p, ok := fields[fs[0]]; ok {
				*p, _ = strconv.ParseInt(fs[1], 10, 64)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return memory{}, err
	}
	if m.VmRSS == 0 {
		return memory{}, fmt.Errorf("no VmRSS for pid %d", pid)
	}
	return m, nil
}
