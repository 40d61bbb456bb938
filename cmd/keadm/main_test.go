package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/skerry-io/skerry/internal/keadm/cloudinstall"
	"github.com/skerry-io/skerry/pkg/version"
)

func execute(args ...string) (string, error) {
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestVersionForms(t *testing.T) {
	want := "keadm " + version.Get().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := execute(args...)
		if err != nil || out != want {
			t.Errorf("keadm %v = %q, %v; want %q", args, out, err, want)
		}
	}
	out, err := execute("version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got version.Info
	if err := json.Unmarshal([]byte(out), &got); err != nil || got != version.Get() {
		t.Fatalf("json version %q: %v", out, err)
	}
	if _, err := execute("version", "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "--output") {
		t.Fatalf("bad output format: %v", err)
	}
}

func TestKubeConfigSpellings(t *testing.T) {
	for _, spelling := range []string{"--kubeconfig", "--kube-config"} {
		var got cloudinstall.Options
		root := newRootCommand()
		for _, c := range root.Commands() {
			if c.Name() == "init" {
				root.RemoveCommand(c)
			}
		}
		root.AddCommand(newInitCommandWith(func(_ context.Context, o cloudinstall.Options) (cloudinstall.Result, error) {
			got = o
			return cloudinstall.Result{}, nil
		}))
		root.SetArgs([]string{"init", spelling, "/tmp/kc", "--mode", "process", "--dry-run"})
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		if err := root.Execute(); err != nil {
			t.Fatalf("%s: %v", spelling, err)
		}
		if got.Kubeconfig != "/tmp/kc" {
			t.Errorf("%s: kubeconfig %q", spelling, got.Kubeconfig)
		}
	}
}
