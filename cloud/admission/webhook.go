package admission

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Registration constants.
const (
	// WebhookName is the name of the webhook inside the configuration (must be a qualified name).
	WebhookName = "autonomy.pods.skerry.io"
	// Path is where cloudcore serves the Handler; the default service path.
	Path = "/mutate-pods-autonomy"
	// TimeoutSeconds bounds each call; pod creation waits at most this long for cloudcore.
	TimeoutSeconds int32 = 5

	managedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "skerry-cloudcore"
)

// WebhookConfiguration is the MutatingWebhookConfiguration calling the Handler at url (cloudcore
// outside the cluster, as in the quickstart). caBundle is the PEM CA that signed cloudcore's
// serving certificate, whose names must include url's host.
//
// failurePolicy is Ignore: a cloudcore that is down or slow must not block pod creation in the
// whole cluster. The consequence is that pods created meanwhile keep the apiserver's 300 s
// tolerations and are evicted 5 minutes after their edge node becomes unreachable.
func WebhookConfiguration(name string, caBundle []byte, url string) *admissionregistrationv1.MutatingWebhookConfiguration {
	return webhookConfiguration(name, admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: slices.Clone(caBundle)})
}

// ServiceWebhookConfiguration is WebhookConfiguration for a cloudcore reached through a Service.
// A nil svc.Path means Path, a nil svc.Port 443.
func ServiceWebhookConfiguration(name string, caBundle []byte, svc admissionregistrationv1.ServiceReference) *admissionregistrationv1.MutatingWebhookConfiguration {
	ref := svc
	if ref.Path == nil {
		ref.Path = ptr(Path)
	} else {
		ref.Path = ptr(*svc.Path)
	}
	if ref.Port == nil {
		ref.Port = ptr[int32](443)
	} else {
		ref.Port = ptr(*svc.Port)
	}
	return webhookConfiguration(name, admissionregistrationv1.WebhookClientConfig{Service: &ref, CABundle: slices.Clone(caBundle)})
}

// webhookConfiguration sets every field the apiserver would default, so that the stored object
// compares equal to a freshly built one and Ensure does not update on every start.
func webhookConfiguration(name string, cc admissionregistrationv1.WebhookClientConfig) *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{managedByLabel: managedBy}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         WebhookName,
			ClientConfig: cc,
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{""},
					APIVersions: []string{"v1"},
					Resources:   []string{"pods"},
					Scope:       ptr(admissionregistrationv1.NamespacedScope),
				},
			}},
			FailurePolicy: ptr(admissionregistrationv1.Ignore),
			MatchPolicy:   ptr(admissionregistrationv1.Equivalent),
			// kube-system's pods are the control plane's; never make their creation wait on us.
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key:      "kubernetes.io/metadata.name",
				Operator: metav1.LabelSelectorOpNotIn,
				Values:   []string{"kube-system"},
			}}},
			ObjectSelector:          &metav1.LabelSelector{},
			SideEffects:             ptr(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr(TimeoutSeconds),
			AdmissionReviewVersions: []string{"v1"},
			// Tolerations added by later webhooks are their authors' choice; no need to look again.
			ReinvocationPolicy: ptr(admissionregistrationv1.NeverReinvocationPolicy),
		}},
	}
}

// Ensure creates want, or updates the stored configuration of that name when its webhooks or
// labels differ. It is idempotent and safe against a concurrent cloudcore (conflicts retried).
func Ensure(ctx context.Context, client kubernetes.Interface, want *admissionregistrationv1.MutatingWebhookConfiguration) error {
	if want == nil || want.Name == "" {
		return errors.New("ensure mutating webhook configuration: no name")
	}
	api := client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	retriable := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err := retry.OnError(retry.DefaultRetry, retriable, func() error {
		cur, err := api.Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			obj := want.DeepCopy()
			obj.ResourceVersion = ""
			_, err = api.Create(ctx, obj, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		labels := maps.Clone(cur.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, want.Labels)
		if maps.Equal(labels, cur.Labels) && apiequality.Semantic.DeepEqual(cur.Webhooks, want.Webhooks) {
			return nil
		}
		upd := cur.DeepCopy()
		upd.Labels = labels
		upd.Webhooks = want.DeepCopy().Webhooks
		_, err = api.Update(ctx, upd, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("ensure mutating webhook configuration %s: %w", want.Name, err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
