package tokens

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/skerry-io/skerry/cloud/edgecontroller/graph"
)

// DefaultExpirationSeconds is what the API server fills into a serviceAccountToken projection
// that leaves expirationSeconds unset; a pod read from elsewhere may not have it filled in.
const DefaultExpirationSeconds int64 = 3600

// Request is one token a pod's volumes ask for. Audience and ExpirationSeconds identify it;
// Path is where the first projection asking for it puts the file (the edge has the pod spec
// and can write the same token to the other paths).
type Request struct {
	Audience          string
	ExpirationSeconds int64
	Path              string
}

type requestKey struct {
	audience string
	seconds  int64
}

func (r Request) key() requestKey { return requestKey{r.Audience, r.ExpirationSeconds} }

// Requests returns the token requests of every projected serviceAccountToken source in the
// pod's volumes, in volume order, one per (audience, expirationSeconds). It returns nil for a
// pod that projects no service account token: such a pod needs no PodTokens at all.
func Requests(pod *corev1.Pod) []Request {
	var out []Request
	for i := range pod.Spec.Volumes {
		p := pod.Spec.Volumes[i].Projected
		if p == nil {
			continue
		}
		for _, s := range p.Sources {
			t := s.ServiceAccountToken
			if t == nil {
				continue
			}
			r := Request{Audience: t.Audience, ExpirationSeconds: DefaultExpirationSeconds, Path: t.Path}
			if t.ExpirationSeconds != nil {
				r.ExpirationSeconds = *t.ExpirationSeconds
			}
			if !containsKey(out, r.key()) {
				out = append(out, r)
			}
		}
	}
	return out
}

// containsKey is a linear scan: a pod has a handful of projections at most.
func containsKey(rs []Request, k requestKey) bool {
	for _, r := range rs {
		if r.key() == k {
			return true
		}
	}
	return false
}

// ServiceAccountName is the account the pod's tokens are requested for.
func ServiceAccountName(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName != "" {
		return pod.Spec.ServiceAccountName
	}
	return graph.DefaultServiceAccount
}
