package admission

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func tol(key string, op corev1.TolerationOperator, effect corev1.TaintEffect, secs *int64) corev1.Toleration {
	return corev1.Toleration{Key: key, Operator: op, Effect: effect, TolerationSeconds: secs}
}

// pluginDefault is what DefaultTolerationSeconds adds before the webhook runs.
func pluginDefault(key string) corev1.Toleration {
	return tol(key, corev1.TolerationOpExists, corev1.TaintEffectNoExecute, i64(APIServerDefaultSeconds))
}

func TestPlan(t *testing.T) {
	const (
		unreach  = corev1.TaintNodeUnreachable
		notReady = corev1.TaintNodeNotReady
	)
	exists, noExec := corev1.TolerationOpExists, corev1.TaintEffectNoExecute
	forever := Decision{Rule: RuleAutonomyLabel}
	hour := Decision{Rule: RuleEdgeSelector, Seconds: i64(3600)}
	gpu := tol("gpu", exists, corev1.TaintEffectNoSchedule, nil)

	tests := []struct {
		name string
		tols []corev1.Toleration
		d    Decision
		want string // changes rendered by render()
	}{
		{"no decision", nil, Decision{}, ""},
		{"none present", nil, forever, "+unreachable:forever +not-ready:forever"},
		{"none present seconds", nil, hour, "+unreachable:3600 +not-ready:3600"},
		{"unrelated kept", []corev1.Toleration{gpu}, hour, "+unreachable:3600 +not-ready:3600"},
		{"plugin defaults replaced", []corev1.Toleration{gpu, pluginDefault(notReady), pluginDefault(unreach)}, forever,
			"2=unreachable:forever 1=not-ready:forever"},
		{"plugin default equal to decision", []corev1.Toleration{pluginDefault(notReady), pluginDefault(unreach)},
			Decision{Rule: RuleEdgeNode, Seconds: i64(APIServerDefaultSeconds)}, ""},
		{"user unreachable kept", []corev1.Toleration{tol(unreach, exists, noExec, i64(60)), pluginDefault(notReady)}, forever,
			"1=not-ready:forever"},
		{"user not-ready forever kept", []corev1.Toleration{tol(notReady, exists, noExec, nil)}, hour, "+unreachable:3600"},
		{"user exactly 300 with Equal is the user's", []corev1.Toleration{tol(unreach, corev1.TolerationOpEqual, noExec, i64(300))}, forever,
			"+not-ready:forever"},
		{"user toleration with empty effect covers", []corev1.Toleration{tol(unreach, exists, "", i64(10))}, forever, "+not-ready:forever"},
		{"NoSchedule does not cover", []corev1.Toleration{tol(unreach, exists, corev1.TaintEffectNoSchedule, nil)}, forever,
			"+unreachable:forever +not-ready:forever"},
		{"empty key Exists covers everything", []corev1.Toleration{tol("", exists, "", nil)}, forever, ""},
		{"empty key NoExecute covers", []corev1.Toleration{tol("", exists, noExec, i64(5))}, forever, ""},
		{"user choice beside plugin default", []corev1.Toleration{tol("", exists, noExec, i64(5)), pluginDefault(unreach)}, forever, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(plan(tc.tols, tc.d)); got != tc.want {
				t.Errorf("plan = %q, want %q", got, tc.want)
			}
		})
	}
}

// render writes changes as "+key:secs" (append) or "index=key:secs" (replace), keys without
// their node.kubernetes.io/ prefix, secs "forever" for nil.
func render(cs []change) string {
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		where := "+"
		if c.index >= 0 {
			where = fmt.Sprintf("%d=", c.index)
		}
		secs := "forever"
		if c.tol.TolerationSeconds != nil {
			secs = fmt.Sprint(*c.tol.TolerationSeconds)
		}
		if c.tol.Operator != corev1.TolerationOpExists || c.tol.Effect != corev1.TaintEffectNoExecute || c.tol.Value != "" {
			secs += "(BAD SHAPE)"
		}
		parts = append(parts, where+strings.TrimPrefix(c.tol.Key, "node.kubernetes.io/")+":"+secs)
	}
	return strings.Join(parts, " ")
}

func TestJSONPatchRefusesBadIndex(t *testing.T) {
	c := []change{{index: 3, tol: pluginDefault(corev1.TaintNodeUnreachable)}}
	if _, err := jsonPatch([]corev1.Toleration{pluginDefault(corev1.TaintNodeUnreachable)}, c); err == nil {
		t.Error("index past the end: no error")
	}
	if _, err := jsonPatch(nil, c); err == nil {
		t.Error("replace in an empty list: no error")
	}
	if p, err := jsonPatch(nil, nil); p != nil || err != nil {
		t.Errorf("no changes: %q, %v", p, err)
	}
}
