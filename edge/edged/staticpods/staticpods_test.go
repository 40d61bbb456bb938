package staticpods

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

const manifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    kubernetes.io/config.mirror: forged
spec:
  containers:
  - name: c
    image: 127.0.0.1:5000/library/busybox:latest
    command: ["sleep", "3600"]
`

func TestParse(t *testing.T) {
	p, err := Parse([]byte(manifest), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "web-edge-1" || p.Namespace != "default" || p.Spec.NodeName != "edge-1" {
		t.Errorf("identity = %s/%s on %q", p.Namespace, p.Name, p.Spec.NodeName)
	}
	if p.UID == "" || p.Annotations[AnnotationHash] != string(p.UID) || p.Annotations[AnnotationSource] != "file" {
		t.Errorf("uid %q, annotations %v", p.UID, p.Annotations)
	}
	if _, ok := p.Annotations[AnnotationMirror]; ok {
		t.Error("the static pod carries the mirror annotation: the runner would not run it")
	}
	if !toleratesNoExecute(p) || p.Spec.RestartPolicy != corev1.RestartPolicyAlways ||
		p.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways {
		t.Errorf("spec = %+v", p.Spec)
	}
	// Same content and node: same uid. Another node or an edit: another uid.
	again, _ := Parse([]byte(manifest), "edge-1")
	other, _ := Parse([]byte(manifest), "edge-2")
	edited, _ := Parse([]byte(manifest+"    workingDir: /tmp\n"), "edge-1")
	if again.UID != p.UID || other.UID == p.UID || edited.UID == p.UID {
		t.Errorf("uids: %s %s %s %s", p.UID, again.UID, other.UID, edited.UID)
	}
	// JSON works as well.
	if j, err := Parse([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"kube-system"},"spec":{"containers":[{"name":"c","image":"x:1"}]}}`), "edge-1"); err != nil ||
		j.Namespace != "kube-system" || j.Spec.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("json: %+v, %v", j, err)
	}

	m := Mirror(p, "edge-1")
	if m.UID != "" || m.Annotations[AnnotationMirror] != string(p.UID) || len(m.OwnerReferences) != 1 ||
		m.OwnerReferences[0].Kind != "Node" || m.OwnerReferences[0].Name != "edge-1" || !*m.OwnerReferences[0].Controller {
		t.Errorf("mirror = %+v", m.ObjectMeta)
	}
	if _, ok := p.Annotations[AnnotationMirror]; ok {
		t.Error("Mirror changed the static pod")
	}
}

func TestParseRefusals(t *testing.T) {
	for name, tc := range map[string]struct{ content, want string }{
		"unknown field": {strings.Replace(manifest, "  containers:", "  bogus: 1\n  containers:", 1), "unknown field"},
		"two documents": {manifest + "---\n" + manifest, "more than one document"},
		"not a pod":     {"apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n", "want v1 Pod"},
		"no name":       {"apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: c, image: x}]\n", "metadata.name"},
		"no containers": {"apiVersion: v1\nkind: Pod\nmetadata:\n  name: s\n", "no containers"},
		"bad name":      {strings.Replace(manifest, "name: web", "name: Web_1", 1), "pod name"},
		"garbage":       {"{{{", "decoding"},
		"too large":     {manifest + "#" + strings.Repeat("x", MaxManifestSize), "larger than"},
	} {
		if _, err := Parse([]byte(tc.content), "edge-1"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

func outboxEntries(t *testing.T, db *store.DB) []string {
	t.Helper()
	es, err := db.Outbox().Next(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, string(e.Message.Route.Operation)+" "+e.Message.Route.Resource)
		if _, err := db.Outbox().Ack(context.Background(), e.ID); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestManager(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, t.TempDir(), store.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	m, err := New(Config{Dir: dir, NodeName: "edge-1", Store: db, Outbox: db.Outbox(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pods := func() []corev1.Pod {
		objs, _, err := db.List(ctx, wire.TypePod, "")
		if err != nil {
			t.Fatal(err)
		}
		var ps []corev1.Pod
		for _, o := range objs {
			var p corev1.Pod
			if err := json.Unmarshal(o.Content, &p); err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		return ps
	}

	write("web.yaml", manifest)
	write("bad.yml", "kind: [")
	write("notes.txt", "ignored")
	m.Sync(ctx, false)
	ps := pods()
	if len(ps) != 1 || ps[0].Name != "web-edge-1" {
		t.Fatalf("pods = %+v", ps)
	}
	uid := ps[0].UID
	if got := outboxEntries(t, db); len(got) != 1 || got[0] != "insert default/pod/web-edge-1" {
		t.Errorf("outbox = %v", got)
	}
	if inv, _ := db.Inventory(ctx); len(inv.Items) != 0 {
		t.Errorf("inventory holds static pods: %+v", inv.Items)
	}

	// A reported status is sent again with the mirror pod on a resend.
	sink := m.StatusSink(nopSink{})
	if err := sink.PodStatus(ctx, &ps[0], corev1.PodStatus{Phase: corev1.PodRunning}); err != nil {
		t.Fatal(err)
	}
	m.Sync(ctx, true)
	if got := outboxEntries(t, db); len(got) != 2 || got[0] != "insert default/pod/web-edge-1" || got[1] != "update default/podstatus/web-edge-1" {
		t.Errorf("outbox after resend = %v", got)
	}

	// Edited: the old pod goes (and its mirror), the new one comes.
	write("web.yaml", manifest+"    workingDir: /tmp\n")
	m.Sync(ctx, false)
	ps = pods()
	if len(ps) != 1 || ps[0].UID == uid {
		t.Fatalf("pods after edit = %+v", ps)
	}
	if got := outboxEntries(t, db); len(got) != 2 || got[0] != "delete default/pod/web-edge-1" || got[1] != "insert default/pod/web-edge-1" {
		t.Errorf("outbox after edit = %v", got)
	}

	// Removed: the pod and its mirror go.
	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	m.Sync(ctx, false)
	if ps := pods(); len(ps) != 0 {
		t.Fatalf("pods after removal = %+v", ps)
	}
	if got := outboxEntries(t, db); len(got) != 1 || got[0] != "delete default/pod/web-edge-1" {
		t.Errorf("outbox after removal = %v", got)
	}
}

type nopSink struct{}

func (nopSink) PodStatus(context.Context, *corev1.Pod, corev1.PodStatus) error { return nil }
func (nopSink) PodDeleted(context.Context, *corev1.Pod) error                  { return nil }
func (nopSink) Event(context.Context, *corev1.Pod, string, string, string)     {}
