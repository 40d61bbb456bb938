package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skerry-io/skerry/internal/keadm/edgejoin"
)

func runJoin(t *testing.T, res edgejoin.Result, joinErr error, args ...string) (edgejoin.Options, []string, error) {
	t.Helper()
	var (
		got    edgejoin.Options
		execed []string
	)
	cmd := newJoinCommandWith(
		func(_ context.Context, o edgejoin.Options) (edgejoin.Result, error) { got = o; return res, joinErr },
		func(argv []string) error { execed = argv; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	err := cmd.Execute()
	return got, execed, err
}

func TestJoinFlags(t *testing.T) {
	o, execed, err := runJoin(t, edgejoin.Result{}, nil,
		"--cloudcore-ipport=10.0.0.1:10000", "--token=t", "--edgenode-name=edge-1", "--labels=a=b",
		"--hub-protocol=quic", "--set", "node.maxPods=20", "--set", "edged.cgroupRoot=/edge",
		"--ignore-checks=ports,cgroups", "--timeout=30s")
	if err != nil {
		t.Fatal(err)
	}
	if o.CloudCoreIPPort != "10.0.0.1:10000" || o.Token != "t" || o.NodeName != "edge-1" || o.Labels != "a=b" || o.HubProtocol != "quic" ||
		!slices.Equal(o.Sets, []string{"node.maxPods=20", "edged.cgroupRoot=/edge"}) || !slices.Equal(o.IgnoreChecks, []string{"ports", "cgroups"}) ||
		o.Timeout != 30*time.Second {
		t.Fatalf("options %+v", o)
	}
	if o.ConfigDir != "/etc/kubeedge/config" || o.StateDir != "/var/lib/skerry/keadm" || o.RuntimeEndpoint != "unix:///run/containerd/containerd.sock" || o.Foreground {
		t.Fatalf("defaults %+v", o)
	}
	if execed != nil {
		t.Fatal("exec without --foreground")
	}
}

func TestJoinRequiresCloud(t *testing.T) {
	_, _, err := runJoin(t, edgejoin.Result{}, nil, "--token=t")
	if err == nil || !strings.Contains(err.Error(), "cloudcore-ipport") {
		t.Fatalf("err %v", err)
	}
}

func TestJoinForegroundExecs(t *testing.T) {
	argv := []string{"/usr/local/bin/edgecore", "--config", "/etc/kubeedge/config/edgecore.yaml"}
	_, execed, err := runJoin(t, edgejoin.Result{Exec: argv}, nil, "--cloudcore-ipport=h:10000", "--foreground")
	if err != nil || !slices.Equal(execed, argv) {
		t.Fatalf("exec %q, err %v", execed, err)
	}
}

func TestJoinError(t *testing.T) {
	_, execed, err := runJoin(t, edgejoin.Result{}, errors.New("host checks failed: runtime"), "--cloudcore-ipport=h:10000", "--foreground")
	if err == nil || execed != nil {
		t.Fatalf("err %v exec %q", err, execed)
	}
}
