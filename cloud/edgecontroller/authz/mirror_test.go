package authz

import (
	"strings"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

// mirrorPod is a mirror pod content with extra spec fields (JSON, without braces).
func mirrorPod(name, node, owner, spec string) string {
	if spec != "" {
		spec = "," + spec
	}
	return `{"metadata":{"name":"` + name + `","namespace":"default","annotations":{"kubernetes.io/config.mirror":"h1"}` + owner +
		`},"spec":{"nodeName":"` + node + `","containers":[{"name":"c","image":"busybox"}]` + spec + `}}`
}

const ownNode = `,"ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"edge-1","uid":"n1","controller":true}]`

func TestMirrorPodInsert(t *testing.T) {
	tests := []struct {
		name, content, why string
		class              Class
	}{
		{"own mirror pod", mirrorPod("s-edge-1", "edge-1", ownNode, ""), "", ""},
		{"without owner", mirrorPod("s-edge-1", "edge-1", "", ""), "", ""},
		{"with hostPath and env", mirrorPod("s-edge-1", "edge-1", ownNode,
			`"volumes":[{"name":"h","hostPath":{"path":"/tmp"}}]`), "", ""},
		{"bound to another node", mirrorPod("s-edge-1", "edge-2", ownNode, ""), "bound to itself", ClassForeignPod},
		{"unbound", mirrorPod("s-edge-1", "", "", ""), "bound to itself", ClassForeignPod},
		{"no mirror annotation", `{"metadata":{"name":"s-edge-1"},"spec":{"nodeName":"edge-1"}}`, "only create mirror pods", ClassUnsupported},
		{"secret volume", mirrorPod("s-edge-1", "edge-1", ownNode, `"volumes":[{"name":"s","secret":{"secretName":"x"}}]`), "secrets", ClassUnreferenced},
		{"projected secret", mirrorPod("s-edge-1", "edge-1", ownNode,
			`"volumes":[{"name":"s","projected":{"sources":[{"secret":{"name":"x"}}]}}]`), "secrets", ClassUnreferenced},
		{"secret env", `{"metadata":{"name":"s-edge-1","annotations":{"kubernetes.io/config.mirror":"h"}},"spec":{"nodeName":"edge-1",` +
			`"containers":[{"name":"c","env":[{"name":"P","valueFrom":{"secretKeyRef":{"name":"x","key":"k"}}}]}]}}`, "secrets (env P)", ClassUnreferenced},
		{"configmap envFrom", `{"metadata":{"name":"s-edge-1","annotations":{"kubernetes.io/config.mirror":"h"}},"spec":{"nodeName":"edge-1",` +
			`"initContainers":[{"name":"c","envFrom":[{"configMapRef":{"name":"x"}}]}]}}`, "configmaps", ClassUnreferenced},
		{"image pull secret", mirrorPod("s-edge-1", "edge-1", ownNode, `"imagePullSecrets":[{"name":"x"}]`), "secrets", ClassUnreferenced},
		{"service account", mirrorPod("s-edge-1", "edge-1", ownNode, `"serviceAccountName":"default"`), "service account", ClassUnreferenced},
		{"token projection", mirrorPod("s-edge-1", "edge-1", ownNode,
			`"volumes":[{"name":"t","projected":{"sources":[{"serviceAccountToken":{"path":"t"}}]}}]`), "service account", ClassUnreferenced},
		{"claim", mirrorPod("s-edge-1", "edge-1", ownNode, `"volumes":[{"name":"p","persistentVolumeClaim":{"claimName":"x"}}]`),
			"persistentvolumeclaims", ClassUnreferenced},
		{"owner another node", mirrorPod("s-edge-1", "edge-1",
			`,"ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"edge-2","uid":"n2","controller":true}]`, ""), "own Node", ClassForeignNode},
		{"owner not controller", mirrorPod("s-edge-1", "edge-1",
			`,"ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"edge-1","uid":"n1"}]`, ""), "controller reference", ClassForeignNode},
		{"two owners", mirrorPod("s-edge-1", "edge-1",
			`,"ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"edge-1","controller":true},{"apiVersion":"v1","kind":"Node","name":"edge-1"}]`, ""),
			"only one owner", ClassForeignNode},
		{"name differs from resource", mirrorPod("other", "edge-1", ownNode, ""), "names pod", ClassMalformed},
		{"duplicate field", `{"spec":{"nodeName":"edge-2","nodeName":"edge-1"}}`, "duplicate", ClassMalformed},
		// Case-sensitive, like upstream and the API server: NodeName is an unknown field.
		{"case-folded field", `{"metadata":{"annotations":{"kubernetes.io/config.mirror":"h"}},"spec":{"NodeName":"edge-1"}}`,
			"bound to itself", ClassForeignPod},
		{"not an object", `null`, "JSON object", ClassMalformed},
	}
	for _, tt := range tests {
		a := New(testScope(), nil)
		d := a.Authorize("edge-1", msg(wire.OpInsert, "default/pod/s-edge-1", tt.content))
		switch {
		case tt.why == "" && !d.Allowed:
			t.Errorf("%s: refused (%s: %s), want allowed", tt.name, d.Class, d.Reason)
		case tt.why != "" && d.Allowed:
			t.Errorf("%s: allowed, want refused with %q", tt.name, tt.why)
		case tt.why != "" && (!strings.Contains(d.Reason, tt.why) || d.Class != tt.class):
			t.Errorf("%s: refused as %s %q, want %s containing %q", tt.name, d.Class, d.Reason, tt.class, tt.why)
		}
	}
	// Inserting a pod without a name is refused as malformed.
	if d := New(testScope(), nil).Authorize("edge-1", msg(wire.OpInsert, "default/pod", mirrorPod("", "edge-1", "", ""))); d.Allowed {
		t.Error("insert of default/pod allowed")
	}
}
