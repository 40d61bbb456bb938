package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/skerry-io/skerry/cloud/edgecontroller/authz"
	"github.com/skerry-io/skerry/pkg/wire"
)

// mirrorOf is the API's mirror pod of the static pod with config hash hash.
func mirrorOf(name, uid, hash string) *corev1.Pod {
	p := testPod("default", name, uid, "edge-1")
	p.Annotations = map[string]string{authz.MirrorAnnotation: hash, "kubernetes.io/config.source": "file"}
	return p
}

// mirrorContent is what the edge sends: no uid; the owner reference may lack the Node's uid.
func mirrorContent(t *testing.T, hash string) string {
	p := mirrorOf("web-1", "", hash)
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "edge-1", Controller: new(true)}}
	return mustJSON(t, p)
}

func TestMirrorPodCreate(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.objs.nodes["edge-1"] = edgeNode("edge-1", "node-uid")
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpInsert, "default/pod/web-1", mirrorContent(t, "h1"))); err != nil {
		t.Fatal(err)
	}
	got, err := e.client.CoreV1().Pods("default").Get(ctx, "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations[authz.MirrorAnnotation] != "h1" || got.Spec.NodeName != "edge-1" ||
		len(got.OwnerReferences) != 1 || got.OwnerReferences[0].UID != "node-uid" {
		t.Errorf("mirror pod = %+v", got)
	}

	// Created again while it exists (the lister has not seen it): AlreadyExists is fine.
	e.client.ClearActions()
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpInsert, "default/pod/web-1", mirrorContent(t, "h1"))); err != nil {
		t.Fatalf("second insert: %v", err)
	}
	if v := verbs(e.client); len(v) != 2 || v[0] != "create pods" || v[1] != "get pods" {
		t.Errorf("actions = %v", v)
	}

	// Up to date in the lister: no API call.
	got.UID = "api-uid"
	e.objs.pods["default/web-1"] = got
	e.client.ClearActions()
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpInsert, "default/pod/web-1", mirrorContent(t, "h1"))); err != nil {
		t.Fatal(err)
	}
	if v := verbs(e.client); len(v) != 0 {
		t.Errorf("actions = %v", v)
	}
	if k := e.h.Stats()[KindMirrorPod]; k.Handled != 3 {
		t.Errorf("stats = %+v", k)
	}
}

func TestMirrorPodReplaced(t *testing.T) {
	ctx := context.Background()
	// The static pod was edited: the mirror pod of its old incarnation is deleted first.
	old := mirrorOf("web-1", "old-uid", "h0")
	e := newEnv(t, old)
	e.objs.nodes["edge-1"] = edgeNode("edge-1", "node-uid")
	e.objs.pods["default/web-1"] = old
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpInsert, "default/pod/web-1", mirrorContent(t, "h1"))); err != nil {
		t.Fatal(err)
	}
	if v := verbs(e.client); len(v) != 2 || v[0] != "delete pods" || v[1] != "create pods" {
		t.Fatalf("actions = %v", v)
	}
	if d := e.client.Actions()[0].(k8stesting.DeleteAction).GetDeleteOptions(); *d.Preconditions.UID != "old-uid" {
		t.Errorf("delete preconditions = %+v", d.Preconditions)
	}
	got, _ := e.client.CoreV1().Pods("default").Get(ctx, "web-1", metav1.GetOptions{})
	if got.Annotations[authz.MirrorAnnotation] != "h1" {
		t.Errorf("mirror pod = %+v", got)
	}
}

func TestMirrorPodRefusals(t *testing.T) {
	ctx := context.Background()
	// A pod of that name that is not a mirror pod is never replaced.
	e := newEnv(t, testPod("default", "web-1", "pod-uid", "edge-1"))
	e.objs.nodes["edge-1"] = edgeNode("edge-1", "node-uid")
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpInsert, "default/pod/web-1", mirrorContent(t, "h1"))); !errors.Is(err, ErrRefused) {
		t.Errorf("over a regular pod: err = %v", err)
	}
	// An owner reference with another uid is refused.
	e = newEnv(t)
	e.objs.nodes["edge-1"] = edgeNode("edge-1", "node-uid")
	p := mirrorOf("web-1", "", "h1")
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "edge-1", UID: "stale", Controller: new(true)}}
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpInsert, "default/pod/web-1", mustJSON(t, p))); !errors.Is(err, ErrRefused) {
		t.Errorf("stale owner uid: err = %v", err)
	}
	// The authorizer's refusals: secrets, another node.
	p = mirrorOf("web-1", "", "h1")
	p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "x"}}}}
	var denied *Denied
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpInsert, "default/pod/web-1", mustJSON(t, p))); !errors.As(err, &denied) {
		t.Errorf("secret volume: err = %v", err)
	}
	if _, err := e.h.Handle(ctx, "edge-2", msg(wire.OpInsert, "default/pod/web-1", mirrorContent(t, "h1"))); !errors.As(err, &denied) {
		t.Errorf("another node's mirror pod: err = %v", err)
	}
	if len(e.client.Actions()) != 0 {
		t.Errorf("actions = %v", verbs(e.client))
	}
}

// TestMirrorPodStatusAndDelete: the edge names the static pod's uid (the mirror's config
// hash); the writes go to the mirror pod with its API uid as precondition.
func TestMirrorPodStatusAndDelete(t *testing.T) {
	ctx := context.Background()
	mirror := mirrorOf("web-1", "api-uid", "h1")
	e := newEnv(t, mirror)
	e.objs.pods["default/web-1"] = mirror
	st := `{"metadata":{"name":"web-1","namespace":"default","uid":"h1"},"status":{"phase":"Running"}}`
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1", st)); err != nil {
		t.Fatal(err)
	}
	var patch struct {
		Metadata struct{ UID string } `json:"metadata"`
	}
	if err := json.Unmarshal(e.client.Actions()[0].(k8stesting.PatchAction).GetPatch(), &patch); err != nil || patch.Metadata.UID != "api-uid" {
		t.Errorf("patch uid = %q, %v; want the mirror pod's", patch.Metadata.UID, err)
	}
	// The same status again (the edge resends it periodically): no API call.
	mirror.Status.Phase = corev1.PodRunning
	e.client.ClearActions()
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1", st)); err != nil || len(e.client.Actions()) != 0 {
		t.Errorf("unchanged status: err %v, actions %v", err, verbs(e.client))
	}
	// An older incarnation of the static pod: refused.
	old := `{"metadata":{"uid":"h0"},"status":{"phase":"Failed"}}`
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpUpdate, "default/podstatus/web-1", old)); !errors.Is(err, ErrPodRecreated) {
		t.Errorf("old incarnation: err = %v", err)
	}
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpDelete, "default/pod/web-1", `{"metadata":{"uid":"h0"}}`)); !errors.Is(err, ErrPodRecreated) {
		t.Errorf("delete of old incarnation: err = %v", err)
	}
	if _, err := e.h.Handle(ctx, "edge-1", msg(wire.OpDelete, "default/pod/web-1", `{"metadata":{"uid":"h1"}}`)); err != nil {
		t.Fatal(err)
	}
	acts := e.client.Actions()
	d, ok := acts[len(acts)-1].(k8stesting.DeleteAction)
	if !ok || *d.GetDeleteOptions().Preconditions.UID != "api-uid" {
		t.Errorf("actions = %v", verbs(e.client))
	}
}
