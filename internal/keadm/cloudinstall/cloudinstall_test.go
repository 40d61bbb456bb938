package cloudinstall

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/skerry-io/skerry/cloud/admission"
	"github.com/skerry-io/skerry/cloud/ca"
	"github.com/skerry-io/skerry/cloud/config"
	"github.com/skerry-io/skerry/pkg/configfile"
)

var gvrCRD = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
var gvrConfigMap = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// wantApplyOrder is init's cluster-mode apply order.
var wantApplyOrder = []string{
	"Namespace kubeedge",
	"CustomResourceDefinition devicemodels.devices.kubeedge.io",
	"CustomResourceDefinition devices.devices.kubeedge.io",
	"CustomResourceDefinition devicestatuses.devices.kubeedge.io",
	"ServiceAccount cloudcore",
	"ClusterRole skerry-cloudcore",
	"ClusterRoleBinding skerry-cloudcore",
	"Role skerry-cloudcore",
	"RoleBinding skerry-cloudcore",
	"Role skerry-cloudcore-leases",
	"RoleBinding skerry-cloudcore-leases",
	"ConfigMap cloudcore",
	"Deployment cloudcore",
	"Service cloudcore",
}

func clusterOptions(f *fakeCluster, stdout, stderr *bytes.Buffer, t *testing.T) Options {
	return Options{
		Kubeconfig: "/nonexistent/kubeconfig", Mode: ModeCluster, Image: "registry.example/skerry/cloudcore:v1",
		StateDir: t.TempDir(), ConfigDir: t.TempDir(), Timeout: 5 * time.Second, PollInterval: 10 * time.Millisecond,
		Stdout: stdout, Stderr: stderr, Clients: f.Clients, Services: &fakeServices{},
	}
}

func TestInitClusterOrderLabelsAndIdempotence(t *testing.T) {
	f := newFakeCluster(t, readyPod("cloud-1", "192.0.2.7"))
	f.onApply = makeAvailable
	var stdout, stderr bytes.Buffer
	o := clusterOptions(f, &stdout, &stderr, t)
	res, err := Init(context.Background(), o)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, stderr.String())
	}
	if got := f.appliedList(); !slices.Equal(got, wantApplyOrder) {
		t.Fatalf("apply order:\n%q\nwant\n%q", got, wantApplyOrder)
	}
	if f.mapper.resets < 1 {
		t.Error("the RESTMapper was not reset after the CRDs")
	}
	for _, r := range res.Objects {
		if r.Result != string(created) {
			t.Errorf("first init: %s %s, want created", r.Object, r.Result)
		}
	}
	// Every object carries keadm's label.
	for _, k := range fakeKinds {
		l, err := f.dyn.Resource(k.gvk.GroupVersion().WithResource(k.resource)).List(context.Background(), listAll)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Items {
			if it.GetKind() == "Pod" {
				continue
			}
			if it.GetLabels()[ManagedByLabel] != ManagedBy {
				t.Errorf("%s %s lacks %s=%s: %v", it.GetKind(), it.GetName(), ManagedByLabel, ManagedBy, it.GetLabels())
			}
		}
	}
	out := stdout.String()
	for _, want := range []string{"mode cluster", "pod cloudcore-abc on node cloud-1",
		"keadm join --cloudcore-ipport=192.0.2.7:10000 --token=$TOKEN", "TOKEN=$(keadm gettoken --kubeconfig /nonexistent/kubeconfig)"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"[1/6] checking the cluster ... done (", "[6/6] waiting for cloudcore", "Deployment kubeedge/cloudcore: created"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, stderr.String())
		}
	}

	// The Deployment: hostNetwork, the ServiceAccount, away from edge nodes, probe on loopback.
	d := f.get(t, gvrDeployment, Namespace, Name)
	spec := d.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	if spec["hostNetwork"] != true || spec["serviceAccountName"] != Name {
		t.Errorf("pod spec hostNetwork %v serviceAccountName %v", spec["hostNetwork"], spec["serviceAccountName"])
	}
	img, _, _ := unstructured.NestedString(spec["containers"].([]any)[0].(map[string]any), "image")
	host, _, _ := unstructured.NestedString(spec["containers"].([]any)[0].(map[string]any), "readinessProbe", "httpGet", "host")
	if img != o.Image || host != "127.0.0.1" {
		t.Errorf("image %q probe host %q", img, host)
	}
	aff, _, _ := unstructured.NestedSlice(spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
	if len(aff) != 1 || !strings.Contains(toYAML(t, aff), EdgeNodeLabel) || !strings.Contains(toYAML(t, aff), "DoesNotExist") {
		t.Errorf("affinity %v", aff)
	}
	// The ConfigMap: in-cluster config.
	cm := f.get(t, gvrConfigMap, Namespace, Name)
	cfgText, _, _ := unstructured.NestedString(cm.Object, "data", ConfigFileName)
	cfg := config.Default()
	if err := configfile.Decode([]byte(cfgText), config.Meta, cfg); err != nil || cfg.KubeAPI.Kubeconfig != "" {
		t.Errorf("ConfigMap config: err %v kubeconfig %q", err, cfg.KubeAPI.Kubeconfig)
	}

	// Twice: nothing changes, and it succeeds.
	stdout.Reset()
	stderr.Reset()
	res, err = Init(context.Background(), o)
	if err != nil {
		t.Fatalf("second init: %v\n%s", err, stderr.String())
	}
	for _, r := range res.Objects {
		if r.Result != string(unchanged) {
			t.Errorf("second init: %s %s, want unchanged", r.Object, r.Result)
		}
	}
	for _, a := range f.dyn.Actions() {
		if a.GetVerb() == "update" || a.GetVerb() == "create" || a.GetVerb() == "delete" {
			t.Errorf("unexpected %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}

	// A changed flag changes the config and restarts the pod (new config hash).
	o.AdvertiseAddresses = []string{"198.51.100.4"}
	res, err = Init(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	changed := map[string]string{}
	for _, r := range res.Objects {
		changed[r.Object] = r.Result
	}
	if changed["ConfigMap kubeedge/cloudcore"] != string(updated) || changed["Deployment kubeedge/cloudcore"] != string(updated) || changed["Namespace kubeedge"] != string(unchanged) {
		t.Errorf("after --advertise-address: %v", changed)
	}
	if res.HubAddress != "198.51.100.4:10000" {
		t.Errorf("hub address %q, want the advertise address", res.HubAddress)
	}
}

func TestInitKeepsForeignNamespaceAndCRD(t *testing.T) {
	foreignNS := unstr("v1", "Namespace", "", Namespace, map[string]string{"owner": "someone"}, nil)
	foreignCRD := unstr("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "devices.devices.kubeedge.io", nil, map[string]any{"spec": map[string]any{"group": "devices.kubeedge.io"}})
	f := newFakeCluster(t, foreignNS, foreignCRD, readyPod("cloud-1", "192.0.2.7"))
	f.onApply = makeAvailable
	var stdout, stderr bytes.Buffer
	o := clusterOptions(f, &stdout, &stderr, t)
	if _, err := Init(context.Background(), o); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"Namespace kubeedge: exists, kept", "CustomResourceDefinition devices.devices.kubeedge.io: exists, kept"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, stderr.String())
		}
	}
	if slices.Contains(f.appliedList(), "Namespace kubeedge") || slices.Contains(f.appliedList(), "CustomResourceDefinition devices.devices.kubeedge.io") {
		t.Errorf("applied over foreign objects: %q", f.appliedList())
	}
	if l := f.get(t, gvrNamespace, "", Namespace).GetLabels(); l[ManagedByLabel] != "" || l["owner"] != "someone" {
		t.Errorf("foreign namespace labels changed: %v", l)
	}

	// Reset deletes keadm's objects and the webhook cloudcore registered, nothing else.
	hook := unstr("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "", admission.WebhookName, map[string]string{ManagedByLabel: cloudcoreManagedBy}, nil)
	otherHook := unstr("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "", "someone-elses", nil, nil)
	otherCM := unstr("v1", "ConfigMap", Namespace, "user-data", nil, nil)
	edge := unstr("v1", "Node", "", "edge-1", map[string]string{EdgeNodeLabel: ""}, nil)
	for _, u := range []*unstructured.Unstructured{hook, otherHook, otherCM, edge} {
		if err := f.dyn.Tracker().Add(u); err != nil {
			t.Fatal(err)
		}
	}
	stderr.Reset()
	if err := Reset(context.Background(), o); err != nil {
		t.Fatalf("reset: %v\n%s", err, stderr.String())
	}
	for _, gone := range []struct {
		gvr      schema.GroupVersionResource
		ns, name string
	}{
		{gvrDeployment, Namespace, Name}, {gvrConfigMap, Namespace, Name}, {gvrWebhook, "", admission.WebhookName},
		{gvrCRD, "", "devicemodels.devices.kubeedge.io"},
	} {
		if f.exists(gone.gvr, gone.ns, gone.name) {
			t.Errorf("%s %s/%s survived reset", gone.gvr.Resource, gone.ns, gone.name)
		}
	}
	for _, kept := range []struct {
		gvr      schema.GroupVersionResource
		ns, name string
	}{
		{gvrNamespace, "", Namespace}, {gvrCRD, "", "devices.devices.kubeedge.io"}, {gvrWebhook, "", "someone-elses"},
		{gvrConfigMap, Namespace, "user-data"}, {gvrNode, "", "edge-1"},
	} {
		if !f.exists(kept.gvr, kept.ns, kept.name) {
			t.Errorf("reset deleted %s %s/%s, which keadm did not create", kept.gvr.Resource, kept.ns, kept.name)
		}
	}
	for _, want := range []string{"1 edge node(s) still exist", "Namespace kubeedge: not created by keadm, kept"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("reset output lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestResetDeletesInOrderAndTwice(t *testing.T) {
	f := newFakeCluster(t, readyPod("cloud-1", "192.0.2.7"))
	f.onApply = makeAvailable
	var stdout, stderr bytes.Buffer
	o := clusterOptions(f, &stdout, &stderr, t)
	if _, err := Init(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if err := Reset(context.Background(), o); err != nil {
		t.Fatalf("reset: %v\n%s", err, stderr.String())
	}
	want := []string{
		"deployments cloudcore", "services cloudcore", "configmaps cloudcore",
		"rolebindings skerry-cloudcore", "rolebindings skerry-cloudcore-leases", "clusterrolebindings skerry-cloudcore",
		"roles skerry-cloudcore", "roles skerry-cloudcore-leases", "clusterroles skerry-cloudcore",
		"serviceaccounts cloudcore",
		"customresourcedefinitions devicemodels.devices.kubeedge.io", "customresourcedefinitions devices.devices.kubeedge.io",
		"customresourcedefinitions devicestatuses.devices.kubeedge.io", "namespaces kubeedge",
	}
	if !slices.Equal(f.deleted, want) {
		t.Errorf("deleted\n%q\nwant\n%q", f.deleted, want)
	}
	if !strings.Contains(stderr.String(), "join tokens and cloudcore's CA") {
		t.Errorf("reset does not say the namespace takes the tokens and CA along:\n%s", stderr.String())
	}
	f.deleted = nil
	stderr.Reset()
	if err := Reset(context.Background(), o); err != nil {
		t.Fatalf("second reset: %v\n%s", err, stderr.String())
	}
	if len(f.deleted) != 0 || !strings.Contains(stderr.String(), "nothing left to delete") {
		t.Errorf("second reset deleted %q:\n%s", f.deleted, stderr.String())
	}
	// Init right after reset works.
	if _, err := Init(context.Background(), o); err != nil {
		t.Fatalf("init after reset: %v", err)
	}
}

func TestInitClusterNotAvailableSaysWhy(t *testing.T) {
	pending := unstr("v1", "Pod", Namespace, "cloudcore-xyz", map[string]string{appLabel: Name}, map[string]any{
		"status": map[string]any{"phase": "Pending", "conditions": []any{map[string]any{
			"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity",
		}}},
	})
	ev := unstr("v1", "Event", Namespace, "cloudcore-xyz.1", nil, map[string]any{
		"involvedObject": map[string]any{"kind": "Pod", "name": "cloudcore-xyz"}, "type": "Warning",
		"reason": "FailedScheduling", "message": "no nodes available to schedule pods",
	})
	f := newFakeCluster(t, pending, ev)
	var stdout, stderr bytes.Buffer
	o := clusterOptions(f, &stdout, &stderr, t)
	o.Timeout = 200 * time.Millisecond
	_, err := Init(context.Background(), o)
	if err == nil {
		t.Fatal("init succeeded without an Available Deployment")
	}
	for _, want := range []string{"not Available after 200ms", "pod cloudcore-xyz: Pending", "Unschedulable", "didn't match Pod's node affinity",
		"FailedScheduling: no nodes available", "no node cloudcore may run on", "--mode process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if !strings.Contains(stderr.String(), "[6/6] waiting for cloudcore to be ready (up to 200ms) ... failed") {
		t.Errorf("progress:\n%s", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("summary printed after a failure:\n%s", stdout.String())
	}
}

func TestInitProcessAndReset(t *testing.T) {
	// Ready only from the fourth request on, so the wait really waits.
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) < 4 {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	f := newFakeCluster(t, unstr("v1", "Secret", Namespace, ca.CASecretName, nil, nil))
	root := t.TempDir()
	kc := filepath.Join(root, "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "cloudcore")
	writeExec(t, bin)
	svc := &fakeServices{}
	var stdout, stderr bytes.Buffer
	o := Options{
		Kubeconfig: kc, Mode: ModeProcess, CloudcoreBinary: bin,
		ConfigDir: filepath.Join(root, "etc", "kubeedge", "config"), StateDir: filepath.Join(root, "var", "keadm"),
		AdvertiseAddresses: []string{"192.0.2.9"}, Set: []string{"admin.address=127.0.0.1:" + port},
		Timeout: 5 * time.Second, PollInterval: 10 * time.Millisecond,
		Stdout: &stdout, Stderr: &stderr, Clients: f.Clients, Services: svc,
	}
	res, err := Init(context.Background(), o)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, stderr.String())
	}
	if len(svc.started) != 1 || svc.started[0].Binary != bin || !slices.Equal(svc.started[0].Args, []string{"--config", res.ConfigFile}) || svc.started[0].StateDir != o.StateDir {
		t.Fatalf("started %+v", svc.started)
	}
	st, err := os.Stat(res.ConfigFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", st, err)
	}
	cfg := config.Default()
	if err := configfile.Load(res.ConfigFile, config.Meta, cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.KubeAPI.Kubeconfig != kc || !slices.Equal(cfg.Bootstrap.AdvertiseAddresses, []string{"192.0.2.9"}) || cfg.Admin.Address != "127.0.0.1:"+port {
		t.Errorf("config: kubeconfig %q advertise %v admin %q", cfg.KubeAPI.Kubeconfig, cfg.Bootstrap.AdvertiseAddresses, cfg.Admin.Address)
	}
	if f.exists(gvrDeployment, Namespace, Name) || slices.Contains(f.appliedList(), "ConfigMap cloudcore") {
		t.Error("process mode applied cluster-mode objects")
	}
	for _, want := range []string{"mode process", "process 4242", "keadm join --cloudcore-ipport=192.0.2.9:10000", res.ConfigFile} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}

	// Twice: the same service restarted, the same record.
	if _, err := Init(context.Background(), o); err != nil {
		t.Fatalf("second init: %v", err)
	}
	rec, err := readRecord(o.StateDir)
	if err != nil || rec == nil {
		t.Fatalf("record: %v %v", rec, err)
	}
	wantDirs := []string{filepath.Join(root, "var"), o.StateDir, filepath.Join(root, "etc"), filepath.Join(root, "etc", "kubeedge"), o.ConfigDir}
	if !slices.Equal(rec.CreatedDirs, wantDirs) {
		t.Errorf("recorded dirs %q, want %q", rec.CreatedDirs, wantDirs)
	}

	// Cluster mode now is refused: the process runs.
	oc := o
	oc.Mode = ModeCluster
	oc.Set = nil
	if _, err := Init(context.Background(), oc); err == nil || !strings.Contains(err.Error(), "keadm reset cloud first") {
		t.Errorf("cluster init over a process-mode init: %v", err)
	}

	if err := Reset(context.Background(), o); err != nil {
		t.Fatalf("reset: %v\n%s", err, stderr.String())
	}
	if len(svc.removed) != 1 || svc.removed[0].Binary != bin {
		t.Errorf("removed %+v", svc.removed)
	}
	for _, p := range append(wantDirs, res.ConfigFile) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind after reset (%v)", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "cloudcore")); err != nil {
		t.Errorf("reset removed what init did not create: %v", err)
	}
	if err := Reset(context.Background(), o); err != nil {
		t.Fatalf("second reset: %v", err)
	}
}

func TestInitProcessExitShowsLog(t *testing.T) {
	f := newFakeCluster(t)
	root := t.TempDir()
	kc := filepath.Join(root, "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "cloudcore")
	writeExec(t, bin)
	svc := &fakeServices{exitsNow: true, log: "line 1\nadmin.address: listen tcp 127.0.0.1:10006: bind: address already in use\n"}
	var stderr bytes.Buffer
	o := Options{Kubeconfig: kc, Mode: ModeProcess, CloudcoreBinary: bin, ConfigDir: filepath.Join(root, "etc"), StateDir: filepath.Join(root, "state"),
		Timeout: 5 * time.Second, PollInterval: 10 * time.Millisecond, Stderr: &stderr, Clients: f.Clients, Services: svc}
	_, err := Init(context.Background(), o)
	if err == nil {
		t.Fatal("init succeeded though cloudcore exited")
	}
	for _, want := range []string{"cloudcore exited", "address already in use", "log: " + filepath.Join(root, "state", "cloudcore.log")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestInitProcessRefusedOverClusterMode(t *testing.T) {
	f := newFakeCluster(t, unstr("apps/v1", "Deployment", Namespace, Name, map[string]string{ManagedByLabel: ManagedBy}, nil))
	root := t.TempDir()
	kc := filepath.Join(root, "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "cloudcore")
	writeExec(t, bin)
	svc := &fakeServices{}
	o := Options{Kubeconfig: kc, Mode: ModeProcess, CloudcoreBinary: bin, ConfigDir: root, StateDir: root, Clients: f.Clients, Services: svc}
	if _, err := Init(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--mode cluster") {
		t.Fatalf("err %v", err)
	}
	if len(svc.started) != 0 || len(f.appliedList()) != 0 {
		t.Errorf("started %v applied %v before refusing", svc.started, f.appliedList())
	}
}

func TestInitChecksInputs(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"unknown key", Options{Set: []string{"hub.nodeLimt=3"}}, []string{"hub.nodeLimt"}},
		{"invalid value", Options{Set: []string{"hub.nodeLimit=0"}}, []string{"hub.nodeLimit"}},
		{"not key=value", Options{Set: []string{"hub.nodeLimit"}}, []string{"want key=value"}},
		{"namespace", Options{Set: []string{"namespace=other"}}, []string{"namespace", "kubeedge"}},
		{"bad advertise", Options{AdvertiseAddresses: []string{"not-an-ip"}}, []string{"bootstrap.advertiseAddresses[0]"}},
		{"bad dns", Options{DNSNames: []string{"Bad_Name"}}, []string{"bootstrap.dnsNames[0]"}},
		{"mode", Options{Mode: "host"}, []string{`--mode "host"`}},
		{"relative dir", Options{StateDir: "state"}, []string{"--state-dir"}},
		{"image", Options{Image: "not an image"}, []string{"--image"}},
		{"kubeconfig in cluster mode", Options{Set: []string{"kubeAPI.kubeconfig=" + filepath.Join(root, "x")}}, []string{"kubeAPI.kubeconfig", "ServiceAccount"}},
		{"process without kubeconfig file", Options{Mode: ModeProcess, Kubeconfig: filepath.Join(root, "missing")}, []string{"kubeAPI.kubeconfig"}},
		{"process without binary", Options{Mode: ModeProcess, Kubeconfig: root + "/kc", CloudcoreBinary: filepath.Join(root, "nope")}, []string{"--cloudcore-binary"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(root+"/kc", nil, 0o600); err != nil {
				t.Fatal(err)
			}
			o := tc.o
			if o.Kubeconfig == "" {
				o.Kubeconfig = "/nonexistent"
			}
			f := newFakeCluster(t)
			o.Clients = f.Clients
			o.Services = &fakeServices{}
			_, err := Init(context.Background(), o)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if len(f.appliedList()) != 0 {
				t.Errorf("applied %v before rejecting", f.appliedList())
			}
		})
	}
}

func writeExec(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestResetCleansHostWhenClusterIsGone(t *testing.T) {
	f := newFakeCluster(t)
	f.Discovery.(*fakediscovery.FakeDiscovery).AddReactor("get", "version", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	root := t.TempDir()
	state, cfgDir := filepath.Join(root, "state"), filepath.Join(root, "config")
	for _, d := range []string{state, cfgDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile := filepath.Join(cfgDir, ConfigFileName)
	if err := os.WriteFile(cfgFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(state, &record{Mode: ModeProcess, Binary: "/usr/bin/cloudcore", ConfigFile: cfgFile, CreatedDirs: []string{cfgDir}}); err != nil {
		t.Fatal(err)
	}
	svc := &fakeServices{running: true}
	err := Reset(context.Background(), Options{StateDir: state, ConfigDir: cfgDir, Clients: f.Clients, Services: svc})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err %v, want the unreachable cluster", err)
	}
	if len(svc.removed) != 1 || svc.removed[0].Binary != "/usr/bin/cloudcore" {
		t.Errorf("removed %+v", svc.removed)
	}
	for _, p := range []string{cfgFile, cfgDir, filepath.Join(state, recordFile)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("reset removed %s, which init did not record as created", state)
	}
}

func TestResetHostOnlyLeavesTheCluster(t *testing.T) {
	f := newFakeCluster(t)
	f.Discovery.(*fakediscovery.FakeDiscovery).AddReactor("get", "version", func(clienttesting.Action) (bool, runtime.Object, error) {
		t.Error("--host-only contacted the cluster")
		return true, nil, errors.New("connection refused")
	})
	root := t.TempDir()
	state, cfgDir := filepath.Join(root, "state"), filepath.Join(root, "config")
	for _, d := range []string{state, cfgDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile := filepath.Join(cfgDir, ConfigFileName)
	if err := os.WriteFile(cfgFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(state, &record{Mode: ModeProcess, Binary: "/usr/bin/cloudcore", ConfigFile: cfgFile, CreatedDirs: []string{cfgDir}}); err != nil {
		t.Fatal(err)
	}
	svc := &fakeServices{running: true}
	if err := Reset(context.Background(), Options{StateDir: state, ConfigDir: cfgDir, Clients: f.Clients, Services: svc, HostOnly: true}); err != nil {
		t.Fatal(err)
	}
	if len(svc.removed) != 1 {
		t.Errorf("removed %+v, want cloudcore", svc.removed)
	}
	if _, err := os.Stat(cfgFile); !os.IsNotExist(err) {
		t.Errorf("%s left behind (%v)", cfgFile, err)
	}
}
