package cloudinstall

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// requestTimeout bounds each request to the API server.
const requestTimeout = 30 * time.Second

// Clients are keadm's connections to the cluster. Every object goes through the dynamic client,
// so the same code applies built-in kinds and CRDs.
type Clients struct {
	Discovery discovery.DiscoveryInterface
	Dynamic   dynamic.Interface
	// Mapper maps kinds to resources; it is reset after the CRDs are installed.
	Mapper meta.ResettableRESTMapper
}

// NewClients connects to the cluster the kubeconfig file at path points to.
func NewClients(path string) (*Clients, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	rc.UserAgent = "skerry-keadm"
	rc.Timeout = requestTimeout
	disc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return &Clients{
		Discovery: disc,
		Dynamic:   dyn,
		Mapper:    restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc)),
	}, nil
}

var (
	gvrNamespace  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrNode       = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	gvrPod        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	gvrEvent      = schema.GroupVersionResource{Version: "v1", Resource: "events"}
	gvrSecret     = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	gvrDeployment = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	gvrWebhook    = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}
)

// resource is the dynamic client for o's kind and namespace.
func (c *Clients) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := c.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", describe(o), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.Dynamic.Resource(m.Resource).Namespace(o.GetNamespace()), nil
	}
	return c.Dynamic.Resource(m.Resource), nil
}

// applyResult says what apply did to an object.
type applyResult string

const (
	created   applyResult = "created"
	updated   applyResult = "configured"
	unchanged applyResult = "unchanged"
	kept      applyResult = "exists, kept (not created by keadm)"
)

// apply server-side applies o as keadm. With keepForeign, an existing object without keadm's
// label is left as it is, so reset will not delete what keadm did not create.
func (c *Clients) apply(ctx context.Context, o *unstructured.Unstructured, keepForeign bool) (applyResult, error) {
	ri, err := c.resource(o)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	cur, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cur = nil
	case err != nil:
		return "", fmt.Errorf("get %s: %w", describe(o), err)
	case keepForeign && cur.GetLabels()[ManagedByLabel] != ManagedBy:
		return kept, nil
	}
	got, err := ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return "", fmt.Errorf("apply %s: %w", describe(o), err)
	}
	switch {
	case cur == nil:
		return created, nil
	case got.GetResourceVersion() == cur.GetResourceVersion():
		return unchanged, nil
	default:
		return updated, nil
	}
}

// deleteManaged deletes o if it exists and its managed-by label is want. It returns a note
// saying what it did, empty when there was nothing.
func (c *Clients) deleteManaged(ctx context.Context, o *unstructured.Unstructured, want string) (string, error) {
	ri, err := c.resource(o)
	if err != nil {
		if meta.IsNoMatchError(err) { // the CRD's API is gone, so are its objects
			return "", nil
		}
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	cur, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("get %s: %w", describe(o), err)
	}
	if cur.GetLabels()[ManagedByLabel] != want {
		return describe(o) + ": not created by keadm, kept", nil
	}
	if cur.GetDeletionTimestamp() != nil {
		return describe(o) + ": being deleted", nil
	}
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	if uid := cur.GetUID(); uid != "" {
		// Delete the object whose label was checked, not one created since under that name.
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	err = ri.Delete(ctx, o.GetName(), opts)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("delete %s: %w", describe(o), err)
	}
	return describe(o) + ": deleted", nil
}

// describe names an object the way kubectl does: kind/name, with the namespace when it has one.
func describe(o *unstructured.Unstructured) string {
	s := o.GetKind() + " " + o.GetName()
	if ns := o.GetNamespace(); ns != "" {
		s = o.GetKind() + " " + ns + "/" + o.GetName()
	}
	return s
}
