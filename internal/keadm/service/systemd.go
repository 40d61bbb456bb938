package service

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skerry-io/skerry/internal/keadm/statefile"
)

// maxCommandOutput bounds what systemctl or journalctl may print back to us.
const maxCommandOutput = 1 << 20

// commandTimeout bounds one systemctl call when the caller's context has no deadline.
const commandTimeout = 30 * time.Second

// runCommand runs name with args (never through a shell) and returns its combined output,
// cut at maxCommandOutput.
func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var out limitedBuffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// limitedBuffer keeps the first maxCommandOutput bytes and drops the rest.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxCommandOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Unit renders the systemd unit file of s.
func Unit(s Spec) (string, error) {
	if err := s.validate(); err != nil {
		return "", err
	}
	words := make([]string, 0, 1+len(s.Args))
	for _, a := range append([]string{s.Binary}, s.Args...) {
		q, err := quoteUnitArg(a)
		if err != nil {
			return "", fmt.Errorf("service %s: %w", s.Name, err)
		}
		words = append(words, q)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by keadm; "keadm reset" removes it.
[Unit]
Description=Skerry %[1]s
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=%[2]s
Restart=always
RestartSec=5
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
`, s.Name, strings.Join(words, " "))
	return b.String(), nil
}

// quoteUnitArg writes one ExecStart word: double-quoted when it holds spaces or quotes, with
// systemd's specifier (%) and variable ($) characters doubled so they stay literal.
func quoteUnitArg(a string) (string, error) {
	for _, r := range a {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("argument %q holds a control character", a)
		}
	}
	a = strings.ReplaceAll(a, "%", "%%")
	a = strings.ReplaceAll(a, "$", "$$")
	if a != "" && !strings.ContainsAny(a, " \t\"'\\;") {
		return a, nil
	}
	a = strings.ReplaceAll(a, `\`, `\\`)
	a = strings.ReplaceAll(a, `"`, `\"`)
	return `"` + a + `"`, nil
}

func (h host) startUnit(ctx context.Context, s Spec) (Handle, error) {
	text, err := Unit(s)
	if err != nil {
		return Handle{}, err
	}
	path := h.unitPath(s)
	if err := writeFileAtomic(path, []byte(text), 0o644); err != nil {
		return Handle{}, err
	}
	unit := s.Name + ".service"
	// restart, not "enable --now": --now leaves an already running service on its old binary and flags.
	for _, args := range [][]string{{"daemon-reload"}, {"enable", unit}, {"restart", unit}} {
		if out, err := h.run(ctx, "systemctl", args...); err != nil {
			return Handle{}, fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	out, err := h.run(ctx, "systemctl", "show", "--property=MainPID", "--value", unit)
	if err != nil {
		return Handle{}, fmt.Errorf("systemctl show %s: %w", unit, err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return Handle{Kind: KindSystemd, Unit: path, PID: pid}, nil
}

// writeFileAtomic creates path's directory if needed and writes data atomically.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return statefile.WriteAtomic(path, data, mode)
}
