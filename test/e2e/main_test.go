//go:build e2e

// Package e2e tests Skerry against the real parts: the local kube-apiserver built from pinned
// upstream source and containerd through CRI. Run with `make e2e` (root).
package e2e

import (
	"context"
	"fmt"
	"os"
	"time"

	"testing"

	"github.com/skerry-io/skerry/test/e2e/framework"
)

// env is shared by every test in this package: the components start once per run.
var env *framework.Env

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	e, err := framework.Setup(ctx, os.Stderr)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e setup: %v\n", err)
		os.Exit(1)
	}
	env = e
	code := m.Run()
	env.Close(os.Stderr)
	os.Exit(code)
}
