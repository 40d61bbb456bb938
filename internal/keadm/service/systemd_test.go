package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestUnitText(t *testing.T) {
	text, err := Unit(Spec{Name: "edgecore", Binary: "/usr/local/bin/edgecore", StateDir: "/var/lib/x",
		Args: []string{"--config", "/etc/kubeedge/config/edgecore.yaml", "--label=a b", `q"uote`, "100%", "$HOME", ""}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nDescription=Skerry edgecore\n",
		"\nExecStart=/usr/local/bin/edgecore --config /etc/kubeedge/config/edgecore.yaml \"--label=a b\" \"q\\\"uote\" 100%% $$HOME \"\"\n",
		"\nRestart=always\n",
		"\nWantedBy=multi-user.target\n",
		"\nAfter=network-online.target\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q:\n%s", want, text)
		}
	}
	if _, err := Unit(Spec{Name: "edgecore", Binary: "/bin/x", StateDir: "/s", Args: []string{"a\nExecStartPre=/bin/evil"}}); err == nil {
		t.Fatal("an argument with a newline was accepted")
	}
}

// fakeSystemd records systemctl/journalctl calls.
type fakeSystemd struct {
	calls  []string
	active bool
	fail   string // a call prefix that fails
}

func (f *fakeSystemd) run(_ context.Context, name string, args ...string) ([]byte, error) {
	call := strings.Join(append([]string{name}, args...), " ")
	f.calls = append(f.calls, call)
	if f.fail != "" && strings.HasPrefix(call, f.fail) {
		return []byte("boom"), errors.New("exit status 1")
	}
	switch {
	case strings.HasPrefix(call, "systemctl show"):
		return []byte("4242\n"), nil
	case strings.HasPrefix(call, "systemctl is-active"):
		if f.active {
			return []byte("active\n"), nil
		}
		return []byte("inactive\n"), errors.New("exit status 3")
	case strings.HasPrefix(call, "journalctl"):
		return []byte("one\ntwo\n"), nil
	case strings.HasPrefix(call, "systemctl restart"):
		f.active = true
	case strings.HasPrefix(call, "systemctl stop"):
		f.active = false
	}
	return nil, nil
}

func fakeHost(t *testing.T) (host, *fakeSystemd) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run-systemd")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fakeSystemd{}
	return host{systemdRunDir: run, unitDir: filepath.Join(dir, "units"), run: f.run}, f
}

func TestSystemdLifecycle(t *testing.T) {
	h, f := fakeHost(t)
	s := Spec{Name: "edgecore", Binary: "/usr/local/bin/edgecore", Args: []string{"--config", "/c.yaml"}, StateDir: t.TempDir()}
	ctx := context.Background()
	hd, err := h.start(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(h.unitDir, "edgecore.service")
	if hd.Kind != KindSystemd || hd.Unit != unit || hd.PID != 4242 {
		t.Fatalf("handle %+v", hd)
	}
	if fi, err := os.Stat(unit); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("unit file: %v %v", fi, err)
	}
	wantCalls := []string{"systemctl daemon-reload", "systemctl enable edgecore.service", "systemctl restart edgecore.service",
		"systemctl show --property=MainPID --value edgecore.service"}
	if !slices.Equal(f.calls, wantCalls) {
		t.Fatalf("calls %q, want %q", f.calls, wantCalls)
	}
	if ok, err := h.running(ctx, s); err != nil || !ok {
		t.Fatalf("running %v %v", ok, err)
	}
	if tail, err := h.logTail(ctx, s, 1); err != nil || tail != "two\n" {
		t.Fatalf("tail %q %v", tail, err)
	}
	f.calls = nil
	if err := h.remove(ctx, s); err != nil {
		t.Fatal(err)
	}
	wantCalls = []string{"systemctl stop edgecore.service", "systemctl disable edgecore.service", "systemctl daemon-reload"}
	if !slices.Equal(f.calls, wantCalls) {
		t.Fatalf("calls %q, want %q", f.calls, wantCalls)
	}
	if _, err := os.Stat(unit); !os.IsNotExist(err) {
		t.Fatalf("unit left: %v", err)
	}
	if ok, err := h.running(ctx, s); err != nil || ok {
		t.Fatalf("running after remove %v %v", ok, err)
	}
	// Removing again touches nothing.
	f.calls = nil
	if err := h.remove(ctx, s); err != nil || len(f.calls) != 0 {
		t.Fatalf("second remove: %v, calls %q", err, f.calls)
	}
}

func TestSystemdFailureNamesCommand(t *testing.T) {
	h, f := fakeHost(t)
	f.fail = "systemctl enable"
	_, err := h.start(context.Background(), Spec{Name: "cloudcore", Binary: "/bin/cloudcore", StateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "systemctl enable cloudcore.service") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err %v", err)
	}
}
