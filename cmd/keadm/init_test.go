package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/skerry-io/skerry/internal/keadm/cloudinstall"
)

func runCmd(cmd *cobra.Command, args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	cmd.SilenceUsage, cmd.SilenceErrors = true, true // as under keadm's root command
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errb.String(), err
}

func TestInitFlagsBecomeOptions(t *testing.T) {
	var got cloudinstall.Options
	rec := func(_ context.Context, o cloudinstall.Options) (cloudinstall.Result, error) {
		got = o
		return cloudinstall.Result{}, nil
	}
	_, _, err := runCmd(newInitCommandWith(rec), "--kubeconfig", "/k/config", "--advertise-address", "192.0.2.1,192.0.2.2",
		"--dns-names", "cloud.example.com", "--mode", "process", "--set", "hub.quic.enable=true", "--set", "bootstrap.dnsNames=[a, b]",
		"--cloudcore-binary", "/opt/cloudcore", "--config-dir", "/c", "--state-dir", "/s", "--timeout", "90s", "--dry-run", "--image", "r/i:t")
	if err != nil {
		t.Fatal(err)
	}
	if got.Kubeconfig != "/k/config" || got.Mode != cloudinstall.ModeProcess || !got.DryRun || got.Timeout != 90*time.Second ||
		!slices.Equal(got.AdvertiseAddresses, []string{"192.0.2.1", "192.0.2.2"}) || !slices.Equal(got.DNSNames, []string{"cloud.example.com"}) ||
		!slices.Equal(got.Set, []string{"hub.quic.enable=true", "bootstrap.dnsNames=[a, b]"}) ||
		got.CloudcoreBinary != "/opt/cloudcore" || got.ConfigDir != "/c" || got.StateDir != "/s" || got.Image != "r/i:t" ||
		got.Stdout == nil || got.Stderr == nil {
		t.Fatalf("options %+v", got)
	}

	// Defaults, and the kubeconfig from $KUBECONFIG.
	t.Setenv("KUBECONFIG", "/env/kubeconfig:/other")
	if _, _, err := runCmd(newInitCommandWith(rec)); err != nil {
		t.Fatal(err)
	}
	if got.Kubeconfig != "/env/kubeconfig" || got.Mode != cloudinstall.ModeCluster || got.ConfigDir != cloudinstall.DefaultConfigDir ||
		got.StateDir != cloudinstall.DefaultStateDir || got.Timeout != cloudinstall.DefaultTimeout || got.DryRun {
		t.Fatalf("default options %+v", got)
	}
}

func TestInitDryRunPrintsManifests(t *testing.T) {
	stdout, stderr, err := runCmd(newInitCommand(), "--dry-run", "--kubeconfig", "/nonexistent", "--advertise-address", "192.0.2.44", "--set", "hub.nodeLimit=3")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"kind: Namespace", "kind: CustomResourceDefinition", "kind: ClusterRole", "kind: Deployment", "kind: Service",
		"nodeLimit: 3", "- 192.0.2.44", "app.kubernetes.io/managed-by: keadm", "image: " + cloudinstall.DefaultImage()} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dry run lacks %q", want)
		}
	}
	if strings.Index(stdout, "kind: Namespace") > strings.Index(stdout, "kind: CustomResourceDefinition") {
		t.Error("the namespace is not first")
	}
}

func TestInitRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "hub.nodeLimt=3"}, "hub.nodeLimt"},
		{[]string{"--set", "hub.websocket.address=nonsense"}, "hub.websocket.address"},
		{[]string{"--mode", "vm"}, "--mode"},
		{[]string{"--timeout", "soon"}, "--timeout"},
		{[]string{"extra"}, "unknown command"},
	} {
		_, _, err := runCmd(newInitCommand(), append([]string{"--dry-run", "--kubeconfig", "/nonexistent"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want one naming %q", tc.args, err, tc.want)
		}
	}
}
