//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skerry-io/skerry/edge/certs"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
	"github.com/skerry-io/skerry/test/e2e/framework"
)

// cloudAddrs are the listen addresses of one test's cloudcore: each test runs its own on
// ports of its own.
type cloudAddrs struct{ hub, bootstrap, admission, admin string }

var syncCloud = cloudAddrs{hub: "127.0.0.1:21000", bootstrap: "127.0.0.1:21002", admission: "127.0.0.1:21005", admin: "127.0.0.1:21006"}

// syncEdge is one edgecore of the sync test.
type syncEdge struct {
	name, dataDir, metaServer, cfgPath string
	proc                               *framework.Process
}

func (e *syncEdge) client(t *testing.T) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(&rest.Config{Host: "http://" + e.metaServer, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// cloudcoreKubeconfig applies the shipped RBAC and returns a kubeconfig that acts as
// cloudcore's ServiceAccount, so the test proves the manifest grants enough and the code needs
// no more.
func cloudcoreKubeconfig(t *testing.T, dir string) string {
	t.Helper()
	if out, err := env.RunKubectl(context.Background(), "apply", "-f", filepath.Join(env.Root, "manifests", "rbac", "cloudcore.yaml")); err != nil {
		t.Fatalf("applying cloudcore RBAC: %v\n%s", err, out)
	}
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = "system:serviceaccount:kubeedge:cloudcore"
	}
	path := filepath.Join(dir, "cloudcore.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func startCloud(t *testing.T, dir string, addrs cloudAddrs) *framework.Process {
	t.Helper()
	kubeconfig := filepath.Join(dir, "cloudcore.kubeconfig")
	if _, err := os.Stat(kubeconfig); err != nil {
		kubeconfig = cloudcoreKubeconfig(t, dir)
	}
	cfg := writeFile(t, dir, "cloudcore.yaml", fmt.Sprintf(`apiVersion: cloudcore.config.skerry.io/v1alpha1
kind: CloudCore
kubeAPI:
  kubeconfig: %s
hub:
  websocket: {enable: true, address: %q}
  quic: {enable: false}
  keepaliveTimeout: 30s
bootstrap:
  address: %q
  advertiseAddresses: [127.0.0.1]
admin:
  address: %q
admission:
  enable: true
  address: %q
`, kubeconfig, addrs.hub, addrs.bootstrap, addrs.admin, addrs.admission))
	p := env.Start(t, "cloudcore", "--config", cfg)
	framework.Eventually(t, 60*time.Second, "cloudcore /readyz", func(ctx context.Context) (bool, error) {
		if done, err := p.Exited(); done {
			t.Fatalf("cloudcore exited: %v\n%s", err, p.Output())
		}
		body, err := httpGet(ctx, "http://"+addrs.admin+"/readyz")
		return err == nil && strings.TrimSpace(body) == "ok", err
	})
	return p
}

// newEdge starts an edgecore joined to the cloud at addrs; extra is appended to its config.
func newEdge(t *testing.T, dir, name string, addrs cloudAddrs, metaServer string, extra string) *syncEdge {
	t.Helper()
	e := &syncEdge{name: name, dataDir: filepath.Join(dir, name), metaServer: metaServer}
	if extra != "" && !strings.HasSuffix(extra, "\n") {
		extra += "\n"
	}
	// Several edgecores run on this one machine: the device modules, whose defaults are the
	// node-wide KubeEdge broker port and DMI socket, run only where a test configures them.
	if !strings.Contains(extra, "eventBus:") {
		extra += "eventBus: {enable: false}\n"
	}
	if !strings.Contains(extra, "deviceTwin:") {
		extra += "deviceTwin: {enable: false}\n"
	}
	e.cfgPath = writeFile(t, dir, name+".yaml", fmt.Sprintf(`apiVersion: edgecore.config.skerry.io/v1alpha1
kind: EdgeCore
nodeName: %s
dataDir: %s
runtime:
  endpoint: %s
hub:
  server: %q
  bootstrapServer: %q
  keepaliveInterval: 2s
  token: %q
metaServer:
  address: %q
%s`, name, e.dataDir, framework.CRIEndpoint, addrs.hub, addrs.bootstrap,
		keadm(t, "gettoken", "--kubeconfig", env.Kubeconfig, "--node", name), metaServer, extra))
	e.start(t)
	return e
}

func (e *syncEdge) start(t *testing.T) {
	t.Helper()
	e.proc = env.Start(t, "edgecore", "--config", e.cfgPath)
	framework.Eventually(t, 60*time.Second, "metaserver of "+e.name, func(ctx context.Context) (bool, error) {
		if done, err := e.proc.Exited(); done {
			t.Fatalf("edgecore %s exited: %v\n%s", e.name, err, e.proc.Output())
		}
		body, err := httpGet(ctx, "http://"+e.metaServer+"/healthz")
		return err == nil && strings.TrimSpace(body) == "ok", err
	})
}

// TestEdgeNodeSync is issue 4 end to end: registration and Ready, the node's objects reaching
// its store and MetaServer (and nothing else), node isolation on the wire, status upstream, and
// autonomy: cloudcore stopped, changes made meanwhile, edgecore restarted offline, convergence.
func TestEdgeNodeSync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	framework.Eventually(t, 2*time.Minute, "namespace kubeedge not terminating", func(ctx context.Context) (bool, error) {
		ns, err := env.Kube.CoreV1().Namespaces().Get(ctx, "kubeedge", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && ns.DeletionTimestamp == nil, err
	})
	cloud := startCloud(t, dir, syncCloud)
	// This test is about sync: the pods it creates are not run (TestEdged runs pods). Edge
	// a's pods tolerate its unreachability for ever (its own autonomy setting).
	const syncEdgeConfig = "edged: {enable: false}\nnode:\n  labels: {e2e.skerry.io/suite: sync}\n  statusUpdateFrequency: 2s\n"
	a := newEdge(t, dir, "sync-a", syncCloud, "127.0.0.1:20550", syncEdgeConfig+"  autonomyTolerationSeconds: -1\n")
	b := newEdge(t, dir, "sync-b", syncCloud, "127.0.0.1:20551", syncEdgeConfig)
	t.Cleanup(func() {
		_ = env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), "autonomy.pods.skerry.io", metav1.DeleteOptions{})
		for _, n := range []string{a.name, b.name} {
			_ = env.Kube.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{})
			_ = env.Kube.CoordinationV1().Leases("kube-node-lease").Delete(context.Background(), n, metav1.DeleteOptions{})
		}
	})

	// Registration: the Node exists with the edge label, host facts and a Ready condition, and
	// its Lease is renewed.
	for _, e := range []*syncEdge{a, b} {
		waitNodeReady(t, e.name)
	}
	node, err := env.Kube.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := node.Labels["node-role.kubernetes.io/edge"]; !ok || node.Labels["e2e.skerry.io/suite"] != "sync" {
		t.Errorf("node labels %v: want the edge label and the configured one", node.Labels)
	}
	if node.Status.Capacity.Cpu().IsZero() || node.Status.Capacity.Memory().IsZero() ||
		!strings.HasPrefix(node.Status.NodeInfo.ContainerRuntimeVersion, "containerd://") || node.Status.NodeInfo.KernelVersion == "" {
		t.Errorf("node status lacks host facts: capacity %v, nodeInfo %+v", node.Status.Capacity, node.Status.NodeInfo)
	}
	t.Logf("node %s: capacity %v, runtime %s, kernel %s", a.name, node.Status.Capacity, node.Status.NodeInfo.ContainerRuntimeVersion, node.Status.NodeInfo.KernelVersion)
	framework.Eventually(t, 30*time.Second, "lease of "+a.name, func(ctx context.Context) (bool, error) {
		l, err := env.Kube.CoordinationV1().Leases("kube-node-lease").Get(ctx, a.name, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime != nil && len(l.OwnerReferences) == 1, err
	})

	framework.Eventually(t, 30*time.Second, "autonomy webhook registered", func(ctx context.Context) (bool, error) {
		_, err := env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "autonomy.pods.skerry.io", metav1.GetOptions{})
		return err == nil, err
	})

	// A client-go informer on edge a's MetaServer follows everything from here on.
	ns := "e2e-sync-" + fmt.Sprint(time.Now().UnixNano()%1_000_000)
	if _, err := env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	seen := watchPods(t, a.client(t), ns)

	// The node's objects arrive; the unreferenced Secret never does.
	must[*corev1.ConfigMap](t)(env.Kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"v": "1"}}, metav1.CreateOptions{}))
	must[*corev1.Secret](t)(env.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "used"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}))
	must[*corev1.Secret](t)(env.Kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "unused"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}))
	must[*corev1.Pod](t)(env.Kube.CoreV1().Pods(ns).Create(ctx, syncPod("web", a.name), metav1.CreateOptions{}))
	ma := a.client(t)
	// cloudcore's webhook gave the pod edge a's autonomy: the unreachable taint tolerated
	// without a time limit, instead of the API server's default 300 s.
	web, err := env.Kube.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !toleratesForever(web, "node.kubernetes.io/unreachable") {
		t.Errorf("pod on an autonomous node lacks the unlimited unreachable toleration: %+v", web.Spec.Tolerations)
	}
	framework.Eventually(t, 30*time.Second, "pod web in edge a's store", func(ctx context.Context) (bool, error) {
		_, err := ma.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil, err
	})
	framework.Eventually(t, 30*time.Second, "configmap and secret in edge a's store", func(ctx context.Context) (bool, error) {
		_, err1 := ma.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
		_, err2 := ma.CoreV1().Secrets(ns).Get(ctx, "used", metav1.GetOptions{})
		return err1 == nil && err2 == nil, fmt.Errorf("configmap: %v, secret: %v", err1, err2)
	})
	secrets, err := ma.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		if s.Name == "unused" {
			t.Errorf("edge a received a Secret no pod on it references")
		}
	}
	if pods, err := b.client(t).CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil || len(pods.Items) != 0 {
		t.Errorf("edge b holds edge a's pods: %v %v", pods, err)
	}

	// kubectl reads the node's pods from its MetaServer, as an operator on the node would.
	out, err := exec.Command(env.Kubectl, "--kubeconfig", os.DevNull, "--server", "http://"+a.metaServer,
		"get", "pods", "-n", ns, "-o", "wide").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "web") || !strings.Contains(string(out), a.name) {
		t.Errorf("kubectl get pods against the MetaServer: %v\n%s", err, out)
	}

	// A ConfigMap update reaches the store.
	cm, _ := env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
	cm.Data["v"] = "2"
	must[*corev1.ConfigMap](t)(env.Kube.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}))
	waitConfigMap(t, ma, ns, "cfg", "2")

	// Pod status through the MetaServer is forwarded as the node and lands in the API.
	putPodStatus(t, a.metaServer, ns, "web", http.StatusOK)
	framework.Eventually(t, 30*time.Second, "pod status from the edge", func(ctx context.Context) (bool, error) {
		p, err := env.Kube.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && p.Status.Message == "reported by the edge", err
	})

	// Node isolation on the wire: edge b's certificate can neither read a's secret nor write
	// a's pod status.
	b.proc.Stop(t)
	conn := dialAs(t, b)
	for _, m := range []*wire.Message{
		wire.NewMessage(wire.Route{Source: "e2e", Group: wire.GroupResource, Operation: wire.OpQuery, Resource: ns + "/secret/used"}, nil),
		wire.NewMessage(wire.Route{Source: "e2e", Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: ns + "/podstatus/web"},
			json.RawMessage(`{"metadata":{"name":"web"},"status":{"message":"forged by b"}}`)),
	} {
		r := requestOn(t, conn, m)
		if r.Route.Operation != wire.OpError {
			t.Errorf("%s %s as %s answered %s %s, want a refusal", m.Route.Operation, m.Route.Resource, b.name, r.Route.Operation, r.Content)
		}
	}
	_ = conn.Close("e2e: done")
	if p, _ := env.Kube.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{}); p != nil && p.Status.Message == "forged by b" {
		t.Error("edge b changed edge a's pod status")
	}

	// Autonomy: cloudcore stops; the edge keeps serving and refuses writes clearly.
	cloud.Stop(t)
	framework.Eventually(t, 30*time.Second, "writes refused while offline", func(context.Context) (bool, error) {
		return putPodStatus(t, a.metaServer, ns, "web", 0) == http.StatusServiceUnavailable, nil
	})
	must[*corev1.Pod](t)(env.Kube.CoreV1().Pods(ns).Create(ctx, syncPod("web-2", a.name), metav1.CreateOptions{}))
	cm, _ = env.Kube.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
	cm.Data["v"] = "3"
	must[*corev1.ConfigMap](t)(env.Kube.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}))
	if err := env.Kube.CoreV1().Pods(ns).Delete(ctx, "web", *metav1.NewDeleteOptions(0)); err != nil {
		t.Fatal(err)
	}
	// edgecore restarts with the cloud away: the store and MetaServer serve everything.
	a.proc.Stop(t)
	a.start(t)
	if _, err := ma.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Errorf("after an offline restart the MetaServer lost pod web: %v", err)
	}
	waitConfigMap(t, ma, ns, "cfg", "2")

	// cloudcore comes back: the edge converges, the delete included, without a restart.
	startCloud(t, dir, syncCloud)
	framework.Eventually(t, 60*time.Second, "edge a converged", func(ctx context.Context) (bool, error) {
		pods, err := ma.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		var names []string
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		return slices.Equal(names, []string{"web-2"}), fmt.Errorf("pods %v", names)
	})
	waitConfigMap(t, ma, ns, "cfg", "3")
	waitNodeReady(t, a.name)

	// The informer saw every change and survived the disconnection and the restart.
	framework.Eventually(t, 30*time.Second, "informer caught up", func(context.Context) (bool, error) {
		got := seen.snapshot()
		return slices.Contains(got, "add web") && slices.Contains(got, "add web-2") && slices.Contains(got, "delete web"),
			fmt.Errorf("informer saw %v", got)
	})
	t.Logf("informer on the MetaServer saw: %v", seen.snapshot())
}

func toleratesForever(p *corev1.Pod, key string) bool {
	for _, tol := range p.Spec.Tolerations {
		if tol.Key == key && tol.Effect == corev1.TaintEffectNoExecute && tol.TolerationSeconds == nil {
			return true
		}
	}
	return false
}

func syncPod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "sync"}},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "c", Image: "127.0.0.1:5000/library/busybox", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "used"}}}}}},
			Volumes: []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists}},
		},
	}
}

// must fails the test on err; it takes a client call's two results as they are.
func must[T any](t *testing.T) func(T, error) {
	return func(_ T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func waitNodeReady(t *testing.T, name string) {
	t.Helper()
	framework.Eventually(t, 90*time.Second, "node "+name+" Ready", func(ctx context.Context) (bool, error) {
		n, err := env.Kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, fmt.Errorf("Ready %s: %s", c.Status, c.Message)
			}
		}
		return false, fmt.Errorf("no Ready condition")
	})
}

func waitConfigMap(t *testing.T, c kubernetes.Interface, ns, name, want string) {
	t.Helper()
	framework.Eventually(t, 60*time.Second, "configmap "+name+" v="+want, func(ctx context.Context) (bool, error) {
		cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && cm.Data["v"] == want, err
	})
}

// podEvents records what an informer saw, as "add|update|delete <name>".
type podEvents struct {
	mu  sync.Mutex
	got []string
}

func (p *podEvents) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, s)
}

func (p *podEvents) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

func watchPods(t *testing.T, c kubernetes.Interface, ns string) *podEvents {
	t.Helper()
	ev := &podEvents{}
	f := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns))
	inf := f.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { ev.add("add " + o.(*corev1.Pod).Name) },
		UpdateFunc: func(_, o any) { ev.add("update " + o.(*corev1.Pod).Name) },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			ev.add("delete " + o.(*corev1.Pod).Name)
		},
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); f.Shutdown() })
	f.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("informer against the MetaServer did not sync")
	}
	return ev
}

// putPodStatus writes a pod's status through a MetaServer and returns the HTTP status; want
// non-zero makes anything else fatal.
func putPodStatus(t *testing.T, metaServer, ns, name string, want int) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPatch, fmt.Sprintf("http://%s/api/v1/namespaces/%s/pods/%s/status", metaServer, ns, name),
		bytes.NewReader([]byte(`{"status":{"message":"reported by the edge"}}`)))
	req.Header.Set("Content-Type", "application/strategic-merge-patch+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if want != 0 {
			t.Fatal(err)
		}
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if want != 0 && resp.StatusCode != want {
		t.Fatalf("PATCH pod status via MetaServer: %s: %s", resp.Status, b)
	}
	if resp.StatusCode == http.StatusServiceUnavailable && !strings.Contains(strings.ToLower(string(b)), "disconnected") {
		t.Errorf("offline write refused without saying why: %s", b)
	}
	return resp.StatusCode
}

// dialAs opens a hub connection with an edge's own certificate.
func dialAs(t *testing.T, e *syncEdge) transport.Conn {
	t.Helper()
	creds, err := certs.Load(e.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	d := transport.WebSocketDialer{Config: transport.DialConfig{Addr: syncCloud.hub, NodeName: e.name, TLS: creds.ClientTLSConfig("127.0.0.1")}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The cloud expects the inventory first; an empty one is fine for a probe.
	inv, _ := wire.NewInventoryMessage(wire.Inventory{})
	if err := conn.Write(ctx, inv); err != nil {
		t.Fatal(err)
	}
	return conn
}

// requestOn sends m and returns its answer, skipping everything else.
func requestOn(t *testing.T, conn transport.Conn, m *wire.Message) *wire.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Write(ctx, m); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for the answer to %s: %v", m.Route.Resource, err)
		}
		if r.Header.ParentID == m.Header.ID {
			return r
		}
	}
}

func httpGet(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}
