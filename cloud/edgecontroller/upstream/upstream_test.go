package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skerry-io/skerry/cloud/edgecontroller/authz"
	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/pkg/wire"
)

func TestHeartbeatCreateThenUpdate(t *testing.T) {
	e := newEnv(t, edgeNode("edge-1", "node-uid"))
	ctx := context.Background()
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpUpdate, "kube-node-lease/lease/edge-1", `{"spec":{"holderIdentity":"edge-1","leaseDurationSeconds":40}}`)); err != nil {
		t.Fatal(err)
	}
	if got, want := verbs(e.client), []string{"get leases", "get nodes", "create leases"}; !slices.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	l, err := e.client.CoordinationV1().Leases(authz.LeaseNamespace).Get(ctx, "edge-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantOwner := metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: "edge-1", UID: "node-uid"}
	if len(l.OwnerReferences) != 1 || l.OwnerReferences[0] != wantOwner {
		t.Errorf("owner references = %+v", l.OwnerReferences)
	}
	if !l.Spec.RenewTime.Time.Equal(testNow) || *l.Spec.HolderIdentity != "edge-1" || *l.Spec.LeaseDurationSeconds != 40 {
		t.Errorf("spec = %+v (renew %v)", l.Spec, l.Spec.RenewTime)
	}

	// The second heartbeat updates the cached lease without reading it, with the edge's renewTime.
	e.client.ClearActions()
	renew := metav1.NewMicroTime(testNow.Add(10 * time.Second))
	in := coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{RenewTime: &renew}}
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpUpdate, "kube-node-lease/lease/edge-1", mustJSON(t, in))); err != nil {
		t.Fatal(err)
	}
	if got, want := verbs(e.client), []string{"update leases"}; !slices.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	l, _ = e.client.CoordinationV1().Leases(authz.LeaseNamespace).Get(ctx, "edge-1", metav1.GetOptions{})
	if !l.Spec.RenewTime.Time.Equal(renew.Time) || *l.Spec.HolderIdentity != "edge-1" || *l.Spec.LeaseDurationSeconds != DefaultLeaseDurationSeconds {
		t.Errorf("spec = %+v", l.Spec)
	}
	if c := e.h.Stats()[KindHeartbeat]; c.Handled != 2 {
		t.Errorf("stats = %+v", c)
	}
}

func TestHeartbeatConflictAndOwnerLater(t *testing.T) {
	// The lease exists without owner (created before the Node, as the kubelet may).
	existing := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "edge-1", Namespace: authz.LeaseNamespace}}
	e := newEnv(t, existing)
	e.objs.nodes["edge-1"] = edgeNode("edge-1", "node-uid")
	conflicted := false
	reactor(e.client, "update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if !conflicted {
			conflicted = true
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "leases"}, "edge-1", errors.New("stale"))
		}
		return false, nil, nil
	})
	if _, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpInsert, "kube-node-lease/lease/edge-1", `{}`)); err != nil {
		t.Fatal(err)
	}
	if got, want := verbs(e.client), []string{"get leases", "update leases", "get leases", "update leases"}; !slices.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	l, _ := e.client.CoordinationV1().Leases(authz.LeaseNamespace).Get(context.Background(), "edge-1", metav1.GetOptions{})
	if len(l.OwnerReferences) != 1 || l.OwnerReferences[0].UID != "node-uid" {
		t.Errorf("owner references = %+v", l.OwnerReferences)
	}
}

func TestHeartbeatLeaseDeletedRecreates(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpUpdate, "kube-node-lease/lease/edge-1", `{}`)); err != nil {
		t.Fatal(err)
	}
	if err := e.client.CoordinationV1().Leases(authz.LeaseNamespace).Delete(ctx, "edge-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.client.ClearActions()
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpUpdate, "kube-node-lease/lease/edge-1", `{}`)); err != nil {
		t.Fatal(err)
	}
	// No Node yet: each renewal looks for the owner to add, as the kubelet does.
	if got, want := verbs(e.client), []string{"get nodes", "update leases", "get nodes", "create leases"}; !slices.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
}

func TestPodStatus(t *testing.T) {
	e := newEnv(t, testPod("default", "web-1", "pod-uid", "edge-1"))
	in := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: "pod-uid", Labels: map[string]string{"steal": "traffic"}},
		Status: corev1.PodStatus{
			Phase:                 corev1.PodRunning,
			PodIP:                 "10.1.0.5",
			ResourceClaimStatuses: []corev1.PodResourceClaimStatus{{Name: "gpu"}},
		},
	}
	reply, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1", mustJSON(t, in)))
	if err != nil || reply != nil {
		t.Fatalf("reply %s, err %v", reply, err)
	}
	acts := e.client.Actions()
	if len(acts) != 1 {
		t.Fatalf("actions = %v", verbs(e.client))
	}
	p, ok := acts[0].(k8stesting.PatchAction)
	if !ok || p.GetSubresource() != "status" || p.GetPatchType() != "application/strategic-merge-patch+json" {
		t.Fatalf("action = %#v", acts[0])
	}
	var patch map[string]any
	if err := json.Unmarshal(p.GetPatch(), &patch); err != nil {
		t.Fatal(err)
	}
	if len(patch) != 2 || patch["metadata"].(map[string]any)["uid"] != "pod-uid" || len(patch["metadata"].(map[string]any)) != 1 {
		t.Errorf("patch = %s", p.GetPatch())
	}
	if strings.Contains(string(p.GetPatch()), "resourceClaimStatuses") {
		t.Errorf("patch carries resource claim statuses: %s", p.GetPatch())
	}
	pod, _ := e.client.CoreV1().Pods("default").Get(context.Background(), "web-1", metav1.GetOptions{})
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP != "10.1.0.5" || len(pod.Labels) != 0 {
		t.Errorf("pod = %+v", pod)
	}
}

func TestPodStatusRefusals(t *testing.T) {
	status := `{"metadata":{"uid":"pod-uid"},"status":{"phase":"Running"}}`
	t.Run("no uid", func(t *testing.T) {
		e := newEnv(t, testPod("default", "web-1", "pod-uid", "edge-1"))
		_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1", `{"status":{}}`))
		if !errors.Is(err, ErrMalformed) || len(e.client.Actions()) != 0 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("lister knows a newer pod", func(t *testing.T) {
		e := newEnv(t)
		e.objs.pods["default/web-1"] = testPod("default", "web-1", "new-uid", "edge-1")
		_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1", status))
		if !errors.Is(err, ErrPodRecreated) || len(e.client.Actions()) != 0 {
			t.Fatalf("err = %v, actions %v", err, verbs(e.client))
		}
	})
	t.Run("API server says uid is immutable", func(t *testing.T) {
		e := newEnv(t, testPod("default", "web-1", "new-uid", "edge-1"))
		reactor(e.client, "patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "web-1",
				field.ErrorList{field.Invalid(field.NewPath("metadata", "uid"), "pod-uid", "field is immutable")})
		})
		_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1", status))
		if !errors.Is(err, ErrPodRecreated) || errors.Is(err, hub.ErrTransient) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("API server conflict", func(t *testing.T) {
		e := newEnv(t, testPod("default", "web-1", "new-uid", "edge-1"))
		reactor(e.client, "patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "web-1", errors.New("uid mismatch"))
		})
		_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpPatch, "default/podpatch/web-1", status))
		if !errors.Is(err, ErrPodRecreated) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("other invalid", func(t *testing.T) {
		e := newEnv(t, testPod("default", "web-1", "pod-uid", "edge-1"))
		reactor(e.client, "patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "web-1",
				field.ErrorList{field.Invalid(field.NewPath("status", "phase"), "x", "bad")})
		})
		_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1", status))
		if errors.Is(err, ErrPodRecreated) || !apierrors.IsInvalid(err) || errors.Is(err, hub.ErrTransient) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("pod gone", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1", status))
		if !errors.Is(err, ErrNotFound) || errors.Is(err, hub.ErrTransient) || err.Error() != "pod default/web-1 not found" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("foreign pod", func(t *testing.T) {
		e := newEnv(t, testPod("default", "web-2", "pod-uid", "edge-2"))
		_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/podstatus/web-2", status))
		var d *Denied
		if !errors.As(err, &d) || !strings.Contains(err.Error(), `bound to "edge-2"`) || len(e.client.Actions()) != 0 {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPodPatch(t *testing.T) {
	e := newEnv(t, testPod("default", "web-1", "pod-uid", "edge-1"))
	reply, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpPatch, "default/podpatch/web-1",
		`{"metadata":{"uid":"pod-uid"},"status":{"$setElementOrder/conditions":[{"type":"Ready"}],"conditions":[{"type":"Ready","status":"True"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(reply, &pod); err != nil {
		t.Fatal(err)
	}
	if pod.Kind != "Pod" || pod.APIVersion != "v1" || len(pod.Status.Conditions) != 1 {
		t.Errorf("answer = %s", reply)
	}
	for _, p := range []string{
		`{"metadata":{"labels":{"app":"x"}}}`,
		`{"metadata":{"ownerReferences":null}}`,
		`{"spec":{"nodeName":"edge-2"}}`,
		`{"status":{"resourceClaimStatuses":[]}}`,
		`{"status":{"extendedResourceClaimStatus":null}}`,
		`{"status":{"$retainKeys":["phase"]}}`,
		`{"status":{"$patch":"replace"}}`,
	} {
		before := len(e.client.Actions())
		_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpPatch, "default/podpatch/web-1", p))
		if !errors.Is(err, ErrRefused) || len(e.client.Actions()) != before {
			t.Errorf("patch %s: err = %v", p, err)
		}
	}
}

func TestPodDelete(t *testing.T) {
	e := newEnv(t, testPod("default", "web-1", "pod-uid", "edge-1"))
	ctx := context.Background()
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpDelete, "default/pod/web-1", `{"metadata":{"uid":"pod-uid"}}`)); err != nil {
		t.Fatal(err)
	}
	d, ok := e.client.Actions()[0].(k8stesting.DeleteAction)
	if !ok {
		t.Fatalf("actions = %v", verbs(e.client))
	}
	opts := d.GetDeleteOptions()
	if opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != 0 || opts.Preconditions == nil || *opts.Preconditions.UID != "pod-uid" {
		t.Errorf("delete options = %+v", opts)
	}
	// Gone already: success.
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpDelete, "default/pod/web-1", `{"metadata":{"uid":"pod-uid"}}`)); err != nil {
		t.Errorf("second delete: %v", err)
	}
	// Without uid: refused, nothing sent.
	before := len(e.client.Actions())
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpDelete, "default/pod/web-1", `{"metadata":{}}`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("err = %v", err)
	}
	if len(e.client.Actions()) != before {
		t.Error("delete without uid reached the API server")
	}
	// Precondition failure (re-created pod).
	reactor(e.client, "delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "web-1", errors.New("Precondition failed: UID"))
	})
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpDelete, "default/pod/web-1", `{"metadata":{"uid":"pod-uid"}}`)); !errors.Is(err, ErrPodRecreated) {
		t.Errorf("err = %v", err)
	}
}

func nodeEvent(count int32, msgText string) string {
	return `{"metadata":{"name":"ignored","namespace":"other","resourceVersion":"9","uid":"u"},"reason":"Starting",` +
		`"message":"` + msgText + `","count":` + jsonInt(count) + `,"involvedObject":{"kind":"Node","name":"edge-1"},` +
		`"lastTimestamp":"2026-03-01T12:00:00Z","type":"Normal"}`
}

func jsonInt(i int32) string { b, _ := json.Marshal(i); return string(b) }

func TestEventOfAnotherObjectIsNotOverwritten(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// An event of that name exists about something else (here, another node).
	other := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "edge-1.abc"},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "edge-2"}, Message: "theirs", Count: 1}
	if _, err := e.client.CoreV1().Events("default").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.h.Handle(ctx, "edge-1", msg(wire.OpInsert, "default/event/edge-1.abc", nodeEvent(5, "mine")))
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("overwriting another object's event: %v, want ErrRefused", err)
	}
	ev, _ := e.client.CoreV1().Events("default").Get(ctx, "edge-1.abc", metav1.GetOptions{})
	if ev.Message != "theirs" || ev.Count != 1 {
		t.Errorf("the other event changed: %+v", ev)
	}
}

func TestEvent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpInsert, "default/event/edge-1.abc", nodeEvent(1, "first"))); err != nil {
		t.Fatal(err)
	}
	ev, err := e.client.CoreV1().Events("default").Get(ctx, "edge-1.abc", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Namespace != "default" || ev.UID != "" || ev.Count != 1 || ev.Reason != "Starting" {
		t.Errorf("event = %+v", ev)
	}
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpInsert, "default/event/edge-1.abc", nodeEvent(3, "again"))); err != nil {
		t.Fatal(err)
	}
	if got, want := verbs(e.client), []string{"create events", "get events", "create events", "get events", "patch events"}; !slices.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
	ev, _ = e.client.CoreV1().Events("default").Get(ctx, "edge-1.abc", metav1.GetOptions{})
	if ev.Count != 3 || ev.Message != "again" {
		t.Errorf("event = %+v", ev)
	}
	// About another node: the authorizer's reason is the error.
	_, err = e.h.Handle(ctx, "edge-1", msg(wire.OpInsert, "default/event/x",
		`{"involvedObject":{"kind":"Node","name":"edge-2"}}`))
	if err == nil || !strings.Contains(err.Error(), "a node may report only on itself") {
		t.Errorf("err = %v", err)
	}
}

func TestQuery(t *testing.T) {
	e := newEnv(t)
	cm := json.RawMessage(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg-1","namespace":"default"}}`)
	node := json.RawMessage(`{"apiVersion":"v1","kind":"Node","metadata":{"name":"edge-1"}}`)
	e.objs.objects["edge-1"] = map[wire.Key]json.RawMessage{
		{Namespace: "default", Type: wire.TypeConfigMap, Name: "cfg-1"}: cm,
		{Type: wire.TypeNode, Name: "edge-1"}:                           node,
	}
	ctx := context.Background()
	for res, want := range map[string]json.RawMessage{"default/configmap/cfg-1": cm, "null/node/edge-1": node} {
		got, err := e.h.Handle(ctx, "edge-1", msg(wire.OpQuery, res, ""))
		if err != nil || string(got) != string(want) {
			t.Errorf("query %s = %s, %v", res, got, err)
		}
	}
	_, err := e.h.Handle(ctx, "edge-1", msg(wire.OpQuery, "default/configmap/gone", ""))
	if !errors.Is(err, ErrNotFound) || err.Error() != "default/configmap/gone not found" || errors.Is(err, hub.ErrTransient) {
		t.Errorf("err = %v", err)
	}
	// Outside the graph: refused by the authorizer with its reason.
	_, err = e.h.Handle(ctx, "edge-1", msg(wire.OpQuery, "default/secret/other", ""))
	want := e.authz.Authorize("edge-1", msg(wire.OpQuery, "default/secret/other", "")).Reason
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if len(e.client.Actions()) != 0 {
		t.Errorf("queries touched the API server: %v", verbs(e.client))
	}
	if c := e.h.Stats()[KindQuery]; c.Handled != 2 || c.Failed != 2 {
		t.Errorf("stats = %+v", c)
	}
}

func TestDeniedAndUnsupported(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := msg(wire.OpUpdate, "null/nodestatus/edge-2", `{"status":{}}`)
	_, err := e.h.Handle(ctx, "edge-1", m)
	var d *Denied
	if !errors.As(err, &d) || d.Decision.Class != authz.ClassForeignNode || err.Error() != d.Decision.Reason {
		t.Errorf("err = %v", err)
	}
	for _, m := range []*wire.Message{
		msg(wire.OpQuery, "kube-node-lease/lease/edge-1", ""),
		msg(wire.OpUpdate, "null/node/edge-1", `{}`),
	} {
		_, err := e.h.Handle(ctx, "edge-1", m)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%s %s: err = %v", m.Route.Operation, m.Route.Resource, err)
		}
	}
	if len(e.client.Actions()) != 0 {
		t.Errorf("actions = %v", verbs(e.client))
	}
	if c := e.h.Stats()[KindNodeStatus]; c.Failed != 1 {
		t.Errorf("stats = %+v", c)
	}
}

func TestMalformedContent(t *testing.T) {
	e := newEnv(t, edgeNode("edge-1", "u"), testPod("default", "web-1", "pod-uid", "edge-1"))
	cases := []struct{ op, res, content string }{
		{"insert", "null/node/edge-1", `null`},
		{"insert", "null/node/edge-1", `[1]`},
		{"insert", "null/node/edge-1", `{"metadata":{"name":"edge-1","name":"edge-2"}}`},
		{"update", "null/nodestatus/edge-1", `{"status":{"capacity":{"cpu":"lots"}}}`},
		{"update", "null/nodestatus/edge-1", `{"status":"x"}`},
		{"update", "kube-node-lease/lease/edge-1", `{"spec":{"leaseDurationSeconds":"x"}}`},
		{"update", "kube-node-lease/lease/edge-1", `{"metadata":{"name":"edge-2"}}`},
		{"update", "default/podstatus/web-1", `{"metadata":{"uid":"pod-uid"},"status":{"phase":7}}`},
		{"patch", "default/podpatch/web-1", `"status"`},
		{"patch", "default/podpatch/web-1", `{"status":[]}`},
		{"patch", "null/nodepatch/edge-1", `{"status":1}`},
		{"delete", "default/pod/web-1", `{"metadata":{"uid":5}}`},
		{"update", "default/podstatus/web-1", `{"metadata":{"uid":"pod-uid","name":"web-2"},"status":{}}`},
	}
	for _, c := range cases {
		_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.Operation(c.op), c.res, c.content))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s %s %s: err = %v, want malformed", c.op, c.res, c.content, err)
		}
	}
	if len(e.client.Actions()) != 0 {
		t.Errorf("malformed content reached the API server: %v", verbs(e.client))
	}
	big := `{"status":{"phase":"` + strings.Repeat("x", maxContent) + `"},"metadata":{"uid":"pod-uid"}}`
	if _, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1", big)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized content: err = %v", err)
	}
}

func TestTransientErrorsRetriedThenHandedBack(t *testing.T) {
	errs := map[string]error{
		"unavailable":        apierrors.NewServiceUnavailable("etcd leader election"),
		"too many requests":  apierrors.NewTooManyRequests("slow down", 1),
		"internal":           apierrors.NewInternalError(errors.New("boom")),
		"server timeout":     apierrors.NewServerTimeout(schema.GroupResource{Resource: "pods"}, "patch", 1),
		"connection refused": &url.Error{Op: "Patch", URL: "https://api", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
		"call timeout":       context.DeadlineExceeded,
	}
	for name, apiErr := range errs {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, testPod("default", "web-1", "pod-uid", "edge-1"))
			calls := 0
			reactor(e.client, "patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				calls++
				return true, nil, apiErr
			})
			_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1",
				`{"metadata":{"uid":"pod-uid"},"status":{"phase":"Running"}}`))
			if !errors.Is(err, hub.ErrTransient) {
				t.Fatalf("err = %v, want transient", err)
			}
			if calls != DefaultRetryAttempts {
				t.Errorf("calls = %d, want %d", calls, DefaultRetryAttempts)
			}
			if want := []time.Duration{DefaultRetryBackoff, 2 * DefaultRetryBackoff, 4 * DefaultRetryBackoff}; !slices.Equal(e.clock.sleeps, want) {
				t.Errorf("backoffs = %v, want %v", e.clock.sleeps, want)
			}
			if c := e.h.Stats()[KindPodStatus]; c.Transient != 1 || c.Failed != 1 {
				t.Errorf("stats = %+v", c)
			}
		})
	}
}

func TestTransientRecovers(t *testing.T) {
	e := newEnv(t, testPod("default", "web-1", "pod-uid", "edge-1"))
	calls := 0
	reactor(e.client, "patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		if calls == 1 {
			return true, nil, apierrors.NewServiceUnavailable("x")
		}
		return false, nil, nil
	})
	_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1",
		`{"metadata":{"uid":"pod-uid"},"status":{"phase":"Running"}}`))
	if err != nil || calls != 2 {
		t.Fatalf("err = %v, calls = %d", err, calls)
	}
}

func TestRetryBudgetAndContext(t *testing.T) {
	e := newEnv(t, testPod("default", "web-1", "pod-uid", "edge-1"))
	e.h.cfg.RetryBudget = 300 * time.Millisecond // room for the first 200 ms pause only
	calls := 0
	reactor(e.client, "patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		e.clock.mu.Lock()
		e.clock.now = e.clock.now.Add(100 * time.Millisecond)
		e.clock.mu.Unlock()
		return true, nil, apierrors.NewServiceUnavailable("x")
	})
	m := msg(wire.OpUpdate, "default/podstatus/web-1", `{"metadata":{"uid":"pod-uid"},"status":{}}`)
	if _, err := e.h.Handle(context.Background(), "edge-1", m); !errors.Is(err, hub.ErrTransient) || calls != 2 {
		t.Errorf("err = %v, calls = %d", err, calls)
	}
	// A done context is transient too: the message was not handled.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.h.Handle(ctx, "edge-1", m); !errors.Is(err, hub.ErrTransient) {
		t.Errorf("cancelled: err = %v", err)
	}
}

func TestPermanentErrorsNotRetried(t *testing.T) {
	for name, apiErr := range map[string]error{
		"forbidden":   apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "web-1", errors.New("no")),
		"bad request": apierrors.NewBadRequest("nope"),
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, testPod("default", "web-1", "pod-uid", "edge-1"))
			calls := 0
			reactor(e.client, "patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				calls++
				return true, nil, apiErr
			})
			_, err := e.h.Handle(context.Background(), "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1",
				`{"metadata":{"uid":"pod-uid"},"status":{}}`))
			if err == nil || errors.Is(err, hub.ErrTransient) || calls != 1 {
				t.Errorf("err = %v, calls = %d", err, calls)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t)
	if _, err := New(Config{Authorizer: e.authz, Objects: e.objs}); err == nil {
		t.Error("no client accepted")
	}
	if _, err := New(Config{Client: e.client, Authorizer: e.authz, Objects: e.objs, NodeLabels: map[string]string{"bad key!": ""}}); err == nil {
		t.Error("bad label accepted")
	}
}

func TestStatsHasEveryKind(t *testing.T) {
	e := newEnv(t)
	if got := len(e.h.Stats()); got != numKinds {
		t.Errorf("kinds = %d", got)
	}
}
