package admission

import (
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// AutonomyTaintKeys are the taints the node lifecycle controller puts on a node that stops
// reporting, in the order the tolerations are added.
func AutonomyTaintKeys() []string {
	return []string{corev1.TaintNodeUnreachable, corev1.TaintNodeNotReady}
}

// change is one toleration to write: at index, or appended when index is -1.
type change struct {
	index int
	tol   corev1.Toleration
}

// plan lists the changes that give tols the autonomy tolerations for d. Per key: a toleration
// covering it that is not exactly the DefaultTolerationSeconds plugin's is the user's choice
// and the key is skipped; the plugin's is replaced in place; with neither, one is appended.
func plan(tols []corev1.Toleration, d Decision) []change {
	if !d.Apply() {
		return nil
	}
	var out []change
	for _, key := range AutonomyTaintKeys() {
		want := corev1.Toleration{
			Key:               key,
			Operator:          corev1.TolerationOpExists,
			Effect:            corev1.TaintEffectNoExecute,
			TolerationSeconds: clonePtr(d.Seconds),
		}
		var defaults []int
		userChoice := false
		for i, t := range tols {
			switch {
			case isPluginDefault(t, key):
				defaults = append(defaults, i)
			case covers(t, key):
				userChoice = true
			}
		}
		if userChoice {
			continue
		}
		if len(defaults) == 0 {
			out = append(out, change{index: -1, tol: want})
			continue
		}
		for _, i := range defaults {
			if !sameSeconds(tols[i].TolerationSeconds, want.TolerationSeconds) {
				out = append(out, change{index: i, tol: want})
			}
		}
	}
	return out
}

// covers mirrors the DefaultTolerationSeconds plugin's test of whether a pod already tolerates
// the NoExecute taint key (an empty key or effect matches everything).
func covers(t corev1.Toleration, key string) bool {
	return (t.Key == key || t.Key == "") && (t.Effect == corev1.TaintEffectNoExecute || t.Effect == "")
}

// isPluginDefault recognises the toleration the DefaultTolerationSeconds plugin adds.
func isPluginDefault(t corev1.Toleration, key string) bool {
	return t.Key == key && t.Operator == corev1.TolerationOpExists && t.Value == "" &&
		t.Effect == corev1.TaintEffectNoExecute &&
		t.TolerationSeconds != nil && *t.TolerationSeconds == APIServerDefaultSeconds
}

func sameSeconds(a, b *int64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// patchOp is one RFC 6902 operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// jsonPatch renders changes against tols, the pod's current tolerations. An absent, null or
// empty /spec/tolerations is set whole ("add" replaces an existing member), since appending
// with "/-" to a missing or null array fails and a failing patch makes the apiserver reject
// the pod regardless of failurePolicy.
func jsonPatch(tols []corev1.Toleration, changes []change) ([]byte, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	var ops []patchOp
	if len(tols) == 0 {
		all := make([]corev1.Toleration, 0, len(changes))
		for _, c := range changes {
			if c.index >= 0 {
				return nil, fmt.Errorf("replace at index %d of an empty toleration list", c.index)
			}
			all = append(all, c.tol)
		}
		ops = append(ops, patchOp{Op: "add", Path: "/spec/tolerations", Value: all})
	} else {
		for _, c := range changes {
			switch {
			case c.index < 0:
				ops = append(ops, patchOp{Op: "add", Path: "/spec/tolerations/-", Value: c.tol})
			case c.index < len(tols):
				ops = append(ops, patchOp{Op: "replace", Path: "/spec/tolerations/" + strconv.Itoa(c.index), Value: c.tol})
			default:
				return nil, fmt.Errorf("replace at index %d of %d tolerations", c.index, len(tols))
			}
		}
	}
	b, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encode JSON patch: %w", err)
	}
	return b, nil
}
