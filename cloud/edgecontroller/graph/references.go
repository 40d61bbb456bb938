package graph

import (
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/skerry-io/skerry/pkg/wire"
)

// DefaultServiceAccount is the account a pod runs as when its spec names none (the API server
// normally fills it in; a pod read from elsewhere may not have it).
const DefaultServiceAccount = "default"

// PodReferences returns the names of the ConfigMaps and Secrets in the pod's namespace that the
// pod references, each sorted and without duplicates, and the name of its service account.
//
// Counted: volumes (configMap, secret, projected configMap/secret sources, and the secret
// references of the csi, flexVolume, azureFile, cephfs, cinder, iscsi, rbd, scaleIO and
// storageos volume types), env[].valueFrom and envFrom[] of containers, init containers and
// ephemeral containers, and spec.imagePullSecrets. Optional references count too: the edge
// must hold the object if it exists, and an optional reference to a missing one costs nothing.
//
// Not counted: objects behind PersistentVolumeClaims (PV secret references are cluster
// objects outside the pod spec), downward API and cluster trust bundle sources (no object
// the node must hold), and projected service account tokens, which are minted through the
// TokenRequest API for the returned service account rather than read from a Secret.
func PodReferences(pod *corev1.Pod) (configMaps, secrets []string, serviceAccount string) {
	var r refSet
	spec := &pod.Spec
	for i := range spec.Volumes {
		r.volume(&spec.Volumes[i].VolumeSource)
	}
	for i := range spec.InitContainers {
		r.env(spec.InitContainers[i].Env, spec.InitContainers[i].EnvFrom)
	}
	for i := range spec.Containers {
		r.env(spec.Containers[i].Env, spec.Containers[i].EnvFrom)
	}
	for i := range spec.EphemeralContainers {
		c := &spec.EphemeralContainers[i].EphemeralContainerCommon
		r.env(c.Env, c.EnvFrom)
	}
	for _, s := range spec.ImagePullSecrets {
		r.secret(s.Name)
	}
	serviceAccount = spec.ServiceAccountName
	if serviceAccount == "" {
		serviceAccount = DefaultServiceAccount
	}
	return sortedUnique(r.configMaps), sortedUnique(r.secrets), serviceAccount
}

// refSet collects names; duplicates are removed once at the end, which is cheaper than a map
// for the handful of references a pod has.
type refSet struct {
	configMaps, secrets []string
}

// configMap and secret ignore empty names: the API server rejects them, but a pod from a
// fake or a partially filled test object must not put "" into a node's set.
func (r *refSet) configMap(name string) {
	if name != "" {
		r.configMaps = append(r.configMaps, name)
	}
}

func (r *refSet) secret(name string) {
	if name != "" {
		r.secrets = append(r.secrets, name)
	}
}

func (r *refSet) secretRef(ref *corev1.LocalObjectReference) {
	if ref != nil {
		r.secret(ref.Name)
	}
}

func (r *refSet) volume(v *corev1.VolumeSource) {
	switch {
	case v.ConfigMap != nil:
		r.configMap(v.ConfigMap.Name)
	case v.Secret != nil:
		r.secret(v.Secret.SecretName)
	case v.Projected != nil:
		for _, s := range v.Projected.Sources {
			if s.ConfigMap != nil {
				r.configMap(s.ConfigMap.Name)
			}
			if s.Secret != nil {
				r.secret(s.Secret.Name)
			}
		}
	case v.CSI != nil:
		r.secretRef(v.CSI.NodePublishSecretRef)
	case v.FlexVolume != nil:
		r.secretRef(v.FlexVolume.SecretRef)
	case v.AzureFile != nil:
		r.secret(v.AzureFile.SecretName)
	case v.CephFS != nil:
		r.secretRef(v.CephFS.SecretRef)
	case v.Cinder != nil:
		r.secretRef(v.Cinder.SecretRef)
	case v.ISCSI != nil:
		r.secretRef(v.ISCSI.SecretRef)
	case v.RBD != nil:
		r.secretRef(v.RBD.SecretRef)
	case v.ScaleIO != nil:
		r.secretRef(v.ScaleIO.SecretRef)
	case v.StorageOS != nil:
		r.secretRef(v.StorageOS.SecretRef)
	}
}

func (r *refSet) env(env []corev1.EnvVar, envFrom []corev1.EnvFromSource) {
	for i := range env {
		vf := env[i].ValueFrom
		if vf == nil {
			continue
		}
		if vf.ConfigMapKeyRef != nil {
			r.configMap(vf.ConfigMapKeyRef.Name)
		}
		if vf.SecretKeyRef != nil {
			r.secret(vf.SecretKeyRef.Name)
		}
	}
	for i := range envFrom {
		if envFrom[i].ConfigMapRef != nil {
			r.configMap(envFrom[i].ConfigMapRef.Name)
		}
		if envFrom[i].SecretRef != nil {
			r.secret(envFrom[i].SecretRef.Name)
		}
	}
}

func sortedUnique(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// ProjectsTokens reports whether the pod has a projected service-account token volume source
// (the API server adds one to every pod that automounts its token). Such a pod holds one
// token object, [TokenKey], which cloudcore fills through the TokenRequest API.
func ProjectsTokens(pod *corev1.Pod) bool {
	for i := range pod.Spec.Volumes {
		if p := pod.Spec.Volumes[i].Projected; p != nil {
			for j := range p.Sources {
				if p.Sources[j].ServiceAccountToken != nil {
					return true
				}
			}
		}
	}
	return false
}

// TokenKey is the key of a pod's token object: one per pod, named after the pod, because
// the tokens are bound to the pod and die with it.
func TokenKey(namespace, pod string) wire.Key {
	return wire.Key{Namespace: namespace, Type: wire.TypeServiceAccountToken, Name: pod}
}
