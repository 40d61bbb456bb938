package runner

import (
	"encoding/json"
	"hash/fnv"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// annotationHash records, on each container Edged creates, the hash of the container spec it
// was created from (the kubelet's annotation name; the value is ours). A running container
// whose hash differs from its spec's is replaced: in a pod only the image can change, and the
// kubelet restarts the container for it.
const annotationHash = "io.kubernetes.container.hash"

// containerHash is a stable digest of what a container was created from. Resources are left
// out, as the kubelet does: a resize is not a reason to restart.
func containerHash(c *corev1.Container) string {
	cc := c.DeepCopy()
	cc.Resources = corev1.ResourceRequirements{}
	cc.ResizePolicy = nil
	b, err := json.Marshal(cc)
	if err != nil { // a Container always marshals; keep a defined value regardless
		return ""
	}
	h := fnv.New64a()
	_, _ = h.Write(b)
	return strconv.FormatUint(h.Sum64(), 16)
}

// specChanged reports whether a container was created from another spec than c. A container
// without the annotation (made before Edged recorded it) is taken as current, so an upgrade
// of edgecore restarts nothing.
func (c *ctr) specChanged(hash string) bool {
	got, ok := c.status.GetAnnotations()[annotationHash]
	return ok && got != hash
}

// backoffKey names a container's crash back-off. It includes the spec hash, as the kubelet's
// does: a container given a new image starts at once instead of waiting out the old one's
// back-off.
func backoffKey(c *corev1.Container, hash string) string { return c.Name + "/" + hash }
