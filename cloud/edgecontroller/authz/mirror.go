package authz

import (
	"bytes"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"

	"github.com/skerry-io/skerry/pkg/wire"
)

// MirrorAnnotation marks a mirror pod, the API's copy of a static pod an edge node runs from
// its manifest directory; its value is the static pod's config hash (its local uid).
const MirrorAnnotation = "kubernetes.io/config.mirror"

// maxMirrorContent bounds what is decoded before deciding.
const maxMirrorContent = 1 << 20

// mirrorPodRule is NodeRestriction's rule for pod creation: a node creates only mirror pods,
// bound to itself, owned (if at all) by its own Node, and referencing no other API object, so
// a node cannot reach secrets, config maps, volumes or a service account through a pod it
// made up.
func (a *Authorizer) mirrorPodRule(node string, key wire.Key, content []byte) Decision {
	if key.Namespace == "" || key.Name == "" {
		return deny(ClassMalformed, "node %q may not insert %s: a pod needs a namespace and a name", node, key)
	}
	if len(content) > maxMirrorContent {
		return deny(ClassMalformed, "node %q may not insert %s: content is larger than %d bytes", node, key, maxMirrorContent)
	}
	var pod corev1.Pod
	if t := bytes.TrimSpace(content); len(t) == 0 || t[0] != '{' {
		return deny(ClassMalformed, "node %q may not insert %s: content must be a JSON object", node, key)
	}
	// Strict and case-sensitive, as upstream decodes it, so both read the same pod.
	strict, err := kjson.UnmarshalStrict(content, &pod, kjson.DisallowDuplicateFields)
	if err == nil && len(strict) > 0 {
		err = strict[0]
	}
	if err != nil {
		return deny(ClassMalformed, "node %q may not insert %s: %v", node, key, err)
	}
	if (pod.Name != "" && pod.Name != key.Name) || (pod.Namespace != "" && pod.Namespace != key.Namespace) {
		return deny(ClassMalformed, "node %q may not insert %s: the content names pod %s/%s", node, key, clip(pod.Namespace), clip(pod.Name))
	}
	if _, ok := pod.Annotations[MirrorAnnotation]; !ok {
		return deny(ClassUnsupported, "node %q may not insert %s: the pod has no %q annotation, node can only create mirror pods",
			node, key, MirrorAnnotation)
	}
	if pod.Spec.NodeName != node {
		return deny(ClassForeignPod, "node %q may not insert %s: a node may create only mirror pods bound to itself, not to %q",
			node, key, clip(pod.Spec.NodeName))
	}
	if why := ownerProblem(node, pod.OwnerReferences); why != "" {
		return deny(ClassForeignNode, "node %q may not insert %s: %s", node, key, why)
	}
	if what := referencedObject(&pod); what != "" {
		return deny(ClassUnreferenced, "node %q may not insert %s: a mirror pod may not reference %s", node, key, what)
	}
	return allow()
}

// ownerProblem says why the owner references are not NodeRestriction's: none, or one
// controller reference to the node's own Node without blockOwnerDeletion.
func ownerProblem(node string, refs []metav1.OwnerReference) string {
	switch {
	case len(refs) == 0:
		return ""
	case len(refs) > 1:
		return "a mirror pod may have only one owner reference, to its Node"
	}
	r := refs[0]
	switch {
	case r.APIVersion != "v1" || r.Kind != "Node" || r.Name != node:
		return fmt.Sprintf("the owner reference must name the node's own Node, not %s %s/%s", clip(r.APIVersion), clip(r.Kind), clip(r.Name))
	case r.Controller == nil || !*r.Controller:
		return "the owner reference to the Node must be a controller reference"
	case r.BlockOwnerDeletion != nil && *r.BlockOwnerDeletion:
		return "the owner reference may not set blockOwnerDeletion"
	}
	return ""
}

// referencedObject names the first API object the pod references ("" if none): the
// NodeRestriction list (service accounts, secrets, config maps, claims) and service-account
// tokens, which need a service account.
func referencedObject(pod *corev1.Pod) string {
	s := &pod.Spec
	if s.ServiceAccountName != "" || s.DeprecatedServiceAccount != "" {
		return "a service account"
	}
	if len(s.ImagePullSecrets) > 0 {
		return "secrets (imagePullSecrets)"
	}
	if len(s.ResourceClaims) > 0 {
		return "resource claims"
	}
	for i := range s.Volumes {
		if what := volumeReference(&s.Volumes[i]); what != "" {
			return what + " (volume " + clip(s.Volumes[i].Name) + ")"
		}
	}
	var all []corev1.Container
	all = append(append(all, s.InitContainers...), s.Containers...)
	for i := range s.EphemeralContainers {
		all = append(all, corev1.Container(s.EphemeralContainers[i].EphemeralContainerCommon))
	}
	for _, c := range all {
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil {
				return "secrets (envFrom)"
			}
			if ef.ConfigMapRef != nil {
				return "configmaps (envFrom)"
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if e.ValueFrom.SecretKeyRef != nil {
				return "secrets (env " + clip(e.Name) + ")"
			}
			if e.ValueFrom.ConfigMapKeyRef != nil {
				return "configmaps (env " + clip(e.Name) + ")"
			}
		}
	}
	return ""
}

func volumeReference(v *corev1.Volume) string {
	switch {
	case v.Secret != nil:
		return "secrets"
	case v.ConfigMap != nil:
		return "configmaps"
	case v.PersistentVolumeClaim != nil, v.Ephemeral != nil:
		return "persistentvolumeclaims"
	case v.CSI != nil && v.CSI.NodePublishSecretRef != nil,
		v.CephFS != nil && v.CephFS.SecretRef != nil,
		v.RBD != nil && v.RBD.SecretRef != nil,
		v.ISCSI != nil && (v.ISCSI.SecretRef != nil),
		v.FlexVolume != nil && v.FlexVolume.SecretRef != nil,
		v.AzureFile != nil,
		v.ScaleIO != nil,
		v.StorageOS != nil && v.StorageOS.SecretRef != nil:
		return "secrets"
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			switch {
			case src.Secret != nil:
				return "secrets"
			case src.ConfigMap != nil:
				return "configmaps"
			case src.ServiceAccountToken != nil:
				return "a service account"
			case src.ClusterTrustBundle != nil:
				return "clustertrustbundles"
			case src.PodCertificate != nil:
				return "pod certificates"
			}
		}
	}
	return ""
}
