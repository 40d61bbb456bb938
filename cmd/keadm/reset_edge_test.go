package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/skerry-io/skerry/internal/keadm/edgejoin"
)

func TestResetEdgeFlags(t *testing.T) {
	var got edgejoin.Options
	cmd := newResetEdgeCommandWith(func(_ context.Context, o edgejoin.Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--state-dir=/tmp/s", "--remote-runtime-endpoint=unix:///r.sock"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.StateDir != "/tmp/s" || got.RuntimeEndpoint != "unix:///r.sock" || got.ConfigDir != "/etc/kubeedge/config" || got.Stdout == nil {
		t.Fatalf("options %+v", got)
	}
}

// The real reset of a host never joined (an empty state dir) does nothing and succeeds.
func TestResetEdgeNotJoined(t *testing.T) {
	cmd := newResetEdgeCommand()
	var out bytes.Buffer
	cmd.SetArgs([]string{"--state-dir=" + t.TempDir()})
	cmd.SetOut(&out)
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out.Bytes(), []byte("nothing to reset")) {
		t.Fatalf("out %q", out.String())
	}
}
