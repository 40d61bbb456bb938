package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skerry-io/skerry/internal/keadm/cloudinstall"
)

func TestResetCloudFlags(t *testing.T) {
	var got cloudinstall.Options
	rec := func(_ context.Context, o cloudinstall.Options) error { got = o; return nil }
	stdout, _, err := runCmd(newResetCloudCommandWith(rec), "--kubeconfig", "/k", "--state-dir", "/s", "--config-dir", "/c", "--timeout", "2m")
	if err != nil {
		t.Fatal(err)
	}
	if got.Kubeconfig != "/k" || got.StateDir != "/s" || got.ConfigDir != "/c" || got.Timeout != 2*time.Minute {
		t.Fatalf("options %+v", got)
	}
	if !strings.Contains(stdout, "removed") {
		t.Errorf("stdout %q", stdout)
	}

	failing := func(context.Context, cloudinstall.Options) error { return errors.New("boom") }
	if _, _, err := runCmd(newResetCloudCommandWith(failing), "--kubeconfig", "/k"); err == nil || err.Error() != "reset cloud: boom" {
		t.Fatalf("err %v", err)
	}
}

func TestResetCloudUnreachableCluster(t *testing.T) {
	// The real command against nothing: a clear error, nothing on stdout.
	stdout, _, err := runCmd(newResetCloudCommand(), "--kubeconfig", "/nonexistent/kubeconfig", "--state-dir", t.TempDir(), "--config-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/kubeconfig") || stdout != "" {
		t.Fatalf("err %v stdout %q", err, stdout)
	}
}
