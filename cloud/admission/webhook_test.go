package admission

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const testURL = "https://203.0.113.7:10007" + Path

func TestWebhookConfiguration(t *testing.T) {
	ca := []byte("-----BEGIN CERTIFICATE-----\n...")
	c := WebhookConfiguration("skerry-autonomy", ca, testURL)
	ca[0] = 'X' // the configuration owns its copy
	if c.Name != "skerry-autonomy" || c.Labels[managedByLabel] != managedBy || len(c.Webhooks) != 1 {
		t.Fatalf("object: %+v", c.ObjectMeta)
	}
	w := c.Webhooks[0]
	if w.Name != WebhookName || *w.FailurePolicy != admissionregistrationv1.Ignore ||
		*w.SideEffects != admissionregistrationv1.SideEffectClassNone || *w.TimeoutSeconds != 5 ||
		len(w.AdmissionReviewVersions) != 1 || w.AdmissionReviewVersions[0] != "v1" ||
		*w.ReinvocationPolicy != admissionregistrationv1.NeverReinvocationPolicy ||
		*w.MatchPolicy != admissionregistrationv1.Equivalent || w.ObjectSelector == nil {
		t.Errorf("webhook: %+v", w)
	}
	if w.ClientConfig.URL == nil || *w.ClientConfig.URL != testURL || w.ClientConfig.Service != nil || string(w.ClientConfig.CABundle[:5]) != "-----" {
		t.Errorf("clientConfig: %+v", w.ClientConfig)
	}
	if len(w.Rules) != 1 {
		t.Fatalf("rules: %+v", w.Rules)
	}
	r := w.Rules[0]
	if len(r.Operations) != 1 || r.Operations[0] != admissionregistrationv1.Create ||
		len(r.APIGroups) != 1 || r.APIGroups[0] != "" || len(r.APIVersions) != 1 || r.APIVersions[0] != "v1" ||
		len(r.Resources) != 1 || r.Resources[0] != "pods" || *r.Scope != admissionregistrationv1.NamespacedScope {
		t.Errorf("rule: %+v", r)
	}
	ns := w.NamespaceSelector
	if ns == nil || len(ns.MatchLabels) != 0 || len(ns.MatchExpressions) != 1 {
		t.Fatalf("namespaceSelector: %+v", ns)
	}
	e := ns.MatchExpressions[0]
	if e.Key != "kubernetes.io/metadata.name" || e.Operator != metav1.LabelSelectorOpNotIn || len(e.Values) != 1 || e.Values[0] != "kube-system" {
		t.Errorf("namespaceSelector: %+v", e)
	}
}

func TestServiceWebhookConfiguration(t *testing.T) {
	c := ServiceWebhookConfiguration("skerry-autonomy", []byte("ca"), admissionregistrationv1.ServiceReference{Namespace: "kubeedge", Name: "cloudcore"})
	cc := c.Webhooks[0].ClientConfig
	if cc.URL != nil || cc.Service == nil || cc.Service.Namespace != "kubeedge" || cc.Service.Name != "cloudcore" ||
		*cc.Service.Path != Path || *cc.Service.Port != 443 {
		t.Errorf("clientConfig: %+v %+v", cc, cc.Service)
	}
	path, port := "/x", int32(10007)
	svc := admissionregistrationv1.ServiceReference{Namespace: "kubeedge", Name: "cloudcore", Path: &path, Port: &port}
	c = ServiceWebhookConfiguration("skerry-autonomy", nil, svc)
	path, port = "/changed", 1
	if s := c.Webhooks[0].ClientConfig.Service; *s.Path != "/x" || *s.Port != 10007 {
		t.Errorf("service reference aliases the caller's: %+v", s)
	}
}

func writes(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		if a.GetVerb() != "get" {
			out = append(out, a.GetVerb())
		}
	}
	return out
}

func TestEnsureCreatesThenUpdates(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	api := client.AdmissionregistrationV1().MutatingWebhookConfigurations()

	if err := Ensure(ctx, client, WebhookConfiguration("skerry-autonomy", []byte("ca1"), testURL)); err != nil {
		t.Fatal(err)
	}
	if got := writes(client); len(got) != 1 || got[0] != "create" {
		t.Fatalf("first Ensure wrote %v, want [create]", got)
	}

	// Same configuration again: nothing written.
	client.ClearActions()
	if err := Ensure(ctx, client, WebhookConfiguration("skerry-autonomy", []byte("ca1"), testURL)); err != nil {
		t.Fatal(err)
	}
	if got := writes(client); len(got) != 0 {
		t.Fatalf("idempotent Ensure wrote %v", got)
	}

	// Someone else labelled it; a new CA: updated, foreign label kept.
	cur, err := api.Get(ctx, "skerry-autonomy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Labels["team"] = "edge"
	cur.Webhooks[0].FailurePolicy = ptr(admissionregistrationv1.Fail) // drift to be repaired
	if _, err := api.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	client.ClearActions()
	if err := Ensure(ctx, client, WebhookConfiguration("skerry-autonomy", []byte("ca2"), testURL)); err != nil {
		t.Fatal(err)
	}
	if got := writes(client); len(got) != 1 || got[0] != "update" {
		t.Fatalf("Ensure after a change wrote %v, want [update]", got)
	}
	cur, err = api.Get(ctx, "skerry-autonomy", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(cur.Webhooks[0].ClientConfig.CABundle) != "ca2" || *cur.Webhooks[0].FailurePolicy != admissionregistrationv1.Ignore ||
		cur.Labels["team"] != "edge" || cur.Labels[managedByLabel] != managedBy {
		t.Errorf("after update: labels %v, webhook %+v", cur.Labels, cur.Webhooks[0])
	}

	// Switching to a service reference is an update too.
	client.ClearActions()
	svc := ServiceWebhookConfiguration("skerry-autonomy", []byte("ca2"), admissionregistrationv1.ServiceReference{Namespace: "kubeedge", Name: "cloudcore"})
	if err := Ensure(ctx, client, svc); err != nil {
		t.Fatal(err)
	}
	if got := writes(client); len(got) != 1 || got[0] != "update" {
		t.Fatalf("Ensure to a service wrote %v, want [update]", got)
	}
}

func TestEnsureRetriesConflicts(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(WebhookConfiguration("skerry-autonomy", []byte("old"), testURL))
	conflicts := 2
	client.PrependReactor("update", "mutatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}, "skerry-autonomy", nil)
		}
		return false, nil, nil
	})
	if err := Ensure(ctx, client, WebhookConfiguration("skerry-autonomy", []byte("new"), testURL)); err != nil {
		t.Fatal(err)
	}
	cur, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "skerry-autonomy", metav1.GetOptions{})
	if err != nil || string(cur.Webhooks[0].ClientConfig.CABundle) != "new" {
		t.Fatalf("after conflicts: %v %v", cur, err)
	}
}

func TestEnsureReportsErrors(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	client.PrependReactor("create", "mutatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "mutatingwebhookconfigurations"}, "skerry-autonomy", nil)
	})
	err := Ensure(ctx, client, WebhookConfiguration("skerry-autonomy", nil, testURL))
	if !apierrors.IsForbidden(err) {
		t.Errorf("err = %v, want a wrapped Forbidden", err)
	}
	if err := Ensure(ctx, client, nil); err == nil {
		t.Error("nil configuration: no error")
	}
}
