package staticpods

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// The kubelet's annotations on static and mirror pods.
const (
	AnnotationSource = "kubernetes.io/config.source"
	AnnotationHash   = "kubernetes.io/config.hash"
	AnnotationMirror = "kubernetes.io/config.mirror"
	// SourceFile is AnnotationSource of a pod read from the manifest directory.
	SourceFile = "file"
)

// MaxManifestSize caps a manifest file: a pod needs far less, and a huge file must not be
// read into memory on every poll.
const MaxManifestSize = 1 << 20

// Parse turns one manifest (YAML or JSON, exactly one v1 Pod) into the static pod the node
// runs, the kubelet's way: name <name>-<node>, namespace "default" unless set, uid a hash of
// (content, node) so an edit is a new pod, bound to the node, tolerating every NoExecute
// taint, with the source and hash annotations and no status.
func Parse(content []byte, node string) (*corev1.Pod, error) {
	if len(content) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is larger than %d bytes", MaxManifestSize)
	}
	if multiDocument(content) {
		return nil, errors.New("manifest holds more than one document; want one Pod per file")
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(content, &pod); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	if pod.APIVersion != "v1" || pod.Kind != "Pod" {
		return nil, fmt.Errorf("manifest is %s %s, want v1 Pod", pod.APIVersion, pod.Kind)
	}
	if pod.Name == "" {
		return nil, errors.New("manifest has no metadata.name")
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, errors.New("manifest has no containers")
	}
	pod.Name = pod.Name + "-" + strings.ToLower(node)
	if errs := validation.IsDNS1123Subdomain(pod.Name); len(errs) > 0 {
		return nil, fmt.Errorf("pod name %q: %s", pod.Name, strings.Join(errs, "; "))
	}
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	if errs := validation.IsDNS1123Label(pod.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("namespace %q: %s", pod.Namespace, strings.Join(errs, "; "))
	}
	sum := sha256.Sum256(append(append([]byte(node), 0), content...))
	hash := hex.EncodeToString(sum[:16])
	pod.UID = types.UID(hash)
	pod.ResourceVersion, pod.GenerateName = "", ""
	pod.ManagedFields, pod.OwnerReferences, pod.DeletionTimestamp = nil, nil, nil
	pod.CreationTimestamp = metav1.Time{}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	delete(pod.Annotations, AnnotationMirror) // the static pod runs; only its mirror has it
	pod.Annotations[AnnotationSource] = SourceFile
	pod.Annotations[AnnotationHash] = hash
	pod.Spec.NodeName = node
	if !toleratesNoExecute(&pod) {
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
	}
	applyDefaults(&pod)
	pod.Status = corev1.PodStatus{}
	return &pod, nil
}

// Mirror is the API's copy of a static pod: the same pod with the mirror annotation, no uid
// (the API server assigns one) and a controller owner reference to the Node, as
// NodeRestriction wants it. The edge may not know its Node's uid: cloudcore fills it in.
func Mirror(static *corev1.Pod, node string) *corev1.Pod {
	m := static.DeepCopy()
	m.UID = ""
	m.Annotations[AnnotationMirror] = static.Annotations[AnnotationHash]
	m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node, Controller: new(true)}}
	m.Status = corev1.PodStatus{}
	return m
}

// IsStatic reports whether pod came from the manifest directory.
func IsStatic(pod *corev1.Pod) bool { return pod.Annotations[AnnotationSource] == SourceFile }

func toleratesNoExecute(pod *corev1.Pod) bool {
	for _, t := range pod.Spec.Tolerations {
		if t.Key == "" && t.Operator == corev1.TolerationOpExists && (t.Effect == "" || t.Effect == corev1.TaintEffectNoExecute) {
			return true
		}
	}
	return false
}

// applyDefaults sets what the API server would default and the runner reads: a static pod
// never passes through the API server before it runs.
func applyDefaults(pod *corev1.Pod) {
	s := &pod.Spec
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = corev1.DNSClusterFirst
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = new(int64(corev1.DefaultTerminationGracePeriodSeconds))
	}
	if s.SchedulerName == "" {
		s.SchedulerName = corev1.DefaultSchedulerName
	}
	for _, cs := range [][]corev1.Container{s.InitContainers, s.Containers} {
		for i := range cs {
			c := &cs[i]
			if c.ImagePullPolicy == "" {
				c.ImagePullPolicy = corev1.PullIfNotPresent
				if tag := imageTag(c.Image); tag == "" || tag == "latest" {
					c.ImagePullPolicy = corev1.PullAlways
				}
			}
			if c.TerminationMessagePath == "" {
				c.TerminationMessagePath = corev1.TerminationMessagePathDefault
			}
			if c.TerminationMessagePolicy == "" {
				c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
			}
		}
	}
}

// imageTag is the tag of an image reference ("" if none; a digest counts as a tag).
func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[i+1:]
	}
	name := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(name, ":"); i >= 0 {
		return name[i+1:]
	}
	return ""
}

// multiDocument reports whether a YAML stream has a document after the first: sigs.k8s.io/yaml
// would read the first silently.
func multiDocument(content []byte) bool {
	seen := false
	for line := range bytes.SplitSeq(content, []byte("\n")) {
		t := bytes.TrimRight(line, " \t\r")
		switch {
		case bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")):
			if seen {
				return true
			}
		case len(bytes.TrimSpace(t)) > 0 && !bytes.HasPrefix(bytes.TrimSpace(t), []byte("#")):
			seen = true
		}
	}
	return false
}
