package cloudinstall

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/skerry-io/skerry/internal/keadm/service"
)

// kinds the fake cluster serves: kind → resource, namespaced.
var fakeKinds = []struct {
	gvk        schema.GroupVersionKind
	resource   string
	namespaced bool
}{
	{schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, "namespaces", false},
	{schema.GroupVersionKind{Version: "v1", Kind: "Node"}, "nodes", false},
	{schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, "pods", true},
	{schema.GroupVersionKind{Version: "v1", Kind: "Event"}, "events", true},
	{schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, "secrets", true},
	{schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, "configmaps", true},
	{schema.GroupVersionKind{Version: "v1", Kind: "Service"}, "services", true},
	{schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"}, "serviceaccounts", true},
	{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, "deployments", true},
	{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, "clusterroles", false},
	{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}, "clusterrolebindings", false},
	{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}, "roles", true},
	{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"}, "rolebindings", true},
	{schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}, "customresourcedefinitions", false},
	{schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfiguration"}, "mutatingwebhookconfigurations", false},
}

// resettableMapper counts resets.
type resettableMapper struct {
	meta.RESTMapper
	mu     sync.Mutex
	resets int
}

func (m *resettableMapper) Reset() {
	m.mu.Lock()
	m.resets++
	m.mu.Unlock()
}

// fakeCluster is a dynamic fake whose server-side apply creates missing objects, keeps status
// and bumps resourceVersion only when something changed, like the API server.
type fakeCluster struct {
	*Clients
	dyn    *dynamicfake.FakeDynamicClient
	mapper *resettableMapper
	// onApply may change an applied object before it is stored (e.g. make a Deployment Available).
	onApply func(u *unstructured.Unstructured)

	mu      sync.Mutex
	applied []string // "Kind name" in apply order
	deleted []string
	rv      int
}

func newFakeCluster(t *testing.T, objs ...*unstructured.Unstructured) *fakeCluster {
	t.Helper()
	listKinds := map[schema.GroupVersionResource]string{}
	dm := meta.NewDefaultRESTMapper(nil)
	for _, k := range fakeKinds {
		listKinds[k.gvk.GroupVersion().WithResource(k.resource)] = k.gvk.Kind + "List"
		scope := meta.RESTScopeRoot
		if k.namespaced {
			scope = meta.RESTScopeNamespace
		}
		dm.AddSpecific(k.gvk, k.gvk.GroupVersion().WithResource(k.resource), k.gvk.GroupVersion().WithResource(k.resource[:len(k.resource)-1]), scope)
	}
	var ro []runtime.Object
	for _, o := range objs {
		ro = append(ro, o)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, ro...)
	f := &fakeCluster{dyn: dyn, mapper: &resettableMapper{RESTMapper: dm}, rv: 100}
	f.Clients = &Clients{
		Discovery: &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{}, FakedServerVersion: &version.Info{GitVersion: "v1.36.3"}},
		Dynamic:   dyn,
		Mapper:    f.mapper,
	}
	dyn.PrependReactor("patch", "*", f.applyReactor)
	dyn.PrependReactor("delete", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		d := a.(clienttesting.DeleteAction)
		f.mu.Lock()
		f.deleted = append(f.deleted, d.GetResource().Resource+" "+d.GetName())
		f.mu.Unlock()
		return false, nil, nil
	})
	return f
}

func (f *fakeCluster) applyReactor(a clienttesting.Action) (bool, runtime.Object, error) {
	p := a.(clienttesting.PatchAction)
	if p.GetPatchType() != types.ApplyPatchType {
		return false, nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(p.GetPatch(), &m); err != nil {
		return true, nil, apierrors.NewBadRequest(err.Error())
	}
	u := &unstructured.Unstructured{Object: m}
	if u.GetName() != p.GetName() {
		return true, nil, apierrors.NewBadRequest(fmt.Sprintf("name %q in the body, %q in the URL", u.GetName(), p.GetName()))
	}
	if pa, ok := a.(clienttesting.PatchActionImpl); !ok || pa.PatchOptions.FieldManager != FieldManager || pa.PatchOptions.Force == nil || !*pa.PatchOptions.Force {
		return true, nil, apierrors.NewBadRequest("apply without field manager keadm and force")
	}
	if u.GetManagedFields() != nil || u.GetResourceVersion() != "" {
		return true, nil, apierrors.NewBadRequest("apply configuration with server-owned metadata")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, u.GetKind()+" "+u.GetName())
	tr := f.dyn.Tracker()
	gvr, ns := p.GetResource(), p.GetNamespace()
	cur, err := tr.Get(gvr, ns, p.GetName())
	if apierrors.IsNotFound(err) {
		f.rv++
		u.SetResourceVersion(strconv.Itoa(f.rv))
		u.SetUID(types.UID(fmt.Sprintf("uid-%d", f.rv)))
		if f.onApply != nil {
			f.onApply(u)
		}
		if err := tr.Create(gvr, u, ns); err != nil {
			return true, nil, err
		}
		return true, u, nil
	}
	if err != nil {
		return true, nil, err
	}
	old := cur.(*unstructured.Unstructured)
	u.SetResourceVersion(old.GetResourceVersion())
	u.SetUID(old.GetUID())
	if st, ok := old.Object["status"]; ok {
		u.Object["status"] = st
	}
	if f.onApply != nil {
		f.onApply(u)
	}
	if apiequality.Semantic.DeepEqual(old.Object, u.Object) {
		return true, old, nil
	}
	f.rv++
	u.SetResourceVersion(strconv.Itoa(f.rv))
	if err := tr.Update(gvr, u, ns); err != nil {
		return true, nil, err
	}
	return true, u, nil
}

func (f *fakeCluster) get(t *testing.T, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	o, err := f.dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return o
}

func (f *fakeCluster) exists(gvr schema.GroupVersionResource, ns, name string) bool {
	_, err := f.dyn.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	return err == nil
}

func (f *fakeCluster) appliedList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.applied...)
}

// makeAvailable gives cloudcore's Deployment the status of one Available replica.
func makeAvailable(u *unstructured.Unstructured) {
	if u.GetKind() != "Deployment" {
		return
	}
	u.SetGeneration(1)
	u.Object["status"] = map[string]any{
		"observedGeneration": int64(1), "replicas": int64(1), "updatedReplicas": int64(1),
		"readyReplicas": int64(1), "availableReplicas": int64(1),
		"conditions": []any{map[string]any{"type": "Available", "status": "True"}},
	}
}

func unstr(apiVersion, kind, ns, name string, labels map[string]string, extra map[string]any) *unstructured.Unstructured {
	u := obj(apiVersion, kind, ns, name)
	if labels != nil {
		u.SetLabels(labels)
	}
	for k, v := range extra {
		u.Object[k] = v
	}
	return u
}

func readyPod(node, hostIP string) *unstructured.Unstructured {
	return unstr("v1", "Pod", Namespace, "cloudcore-abc", map[string]string{appLabel: Name}, map[string]any{
		"spec": map[string]any{"nodeName": node},
		"status": map[string]any{"phase": "Running", "hostIP": hostIP,
			"conditions": []any{map[string]any{"type": "Ready", "status": "True"}}},
	})
}

// fakeServices is a host without systemd where Start "runs" the service until Remove.
type fakeServices struct {
	mu       sync.Mutex
	started  []service.Spec
	removed  []service.Spec
	running  bool
	exitsNow bool // Running reports false right after Start
	log      string
}

func (s *fakeServices) Start(_ context.Context, sp service.Spec) (service.Handle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = append(s.started, sp)
	s.running = !s.exitsNow
	return service.Handle{Kind: service.KindProcess, PID: 4242, LogPath: sp.StateDir + "/" + sp.Name + ".log"}, nil
}

func (s *fakeServices) Running(service.Spec) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running, nil
}

func (s *fakeServices) Remove(_ context.Context, sp service.Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removed = append(s.removed, sp)
	s.running = false
	return nil
}

func (s *fakeServices) LogTail(service.Spec, int) (string, error) { return s.log, nil }
