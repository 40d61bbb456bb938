package runner

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Waiting reasons of image pulls (the kubelet's).
const (
	reasonErrImagePull      = "ErrImagePull"
	reasonImagePullBackOff  = "ImagePullBackOff"
	reasonErrImageNeverPull = "ErrImageNeverPull"
	reasonInvalidImageName  = "InvalidImageName"
)

// pullPolicy is the container's policy, defaulted as the API server does (Always for the
// tag latest or no tag).
func pullPolicy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	if _, tag := splitImage(c.Image); tag == "" || tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// splitImage returns the repository and the tag ("" when the image has none or a digest).
func splitImage(image string) (repo, tag string) {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[:i], "digest"
	}
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		return image[:i], image[i+1:]
	}
	return image, ""
}

// registryHost is the registry of an image reference, with Docker Hub's defaulting.
func registryHost(image string) (host, repo string) {
	first, rest, ok := strings.Cut(image, "/")
	if !ok || !strings.ContainsAny(first, ".:") && first != "localhost" {
		repo, _ = splitImage(image)
		if !strings.Contains(repo, "/") {
			repo = "library/" + repo
		}
		return "docker.io", repo
	}
	repo, _ = splitImage(rest)
	return normalizeRegistry(first), repo
}

func normalizeRegistry(h string) string {
	switch h {
	case "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return h
}

// ensureImage returns the image to run, honouring the pull policy and the pull back-off;
// a nil ref comes with why the container must wait and when to try again.
func (w *worker) ensureImage(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (string, *corev1.ContainerStateWaiting, time.Time) {
	if c.Image == "" {
		return "", &corev1.ContainerStateWaiting{Reason: reasonInvalidImageName, Message: "container has no image"}, time.Time{}
	}
	img := w.r.cfg.Images
	spec := &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image}
	policy := pullPolicy(c)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if policy != corev1.PullAlways {
		st, err := img.ImageStatus(cctx, &runtimeapi.ImageStatusRequest{Image: spec})
		if err != nil {
			return "", &corev1.ContainerStateWaiting{Reason: reasonErrImagePull, Message: fmt.Sprintf("image status: %v", err)}, w.r.clock.Now().Add(retryAfter)
		}
		if id := st.GetImage().GetId(); id != "" {
			w.event(ctx, pod, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
			return id, nil, time.Time{}
		}
		if policy == corev1.PullNever {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
			w.event(ctx, pod, corev1.EventTypeWarning, reasonErrImageNeverPull, msg)
			return "", &corev1.ContainerStateWaiting{Reason: reasonErrImageNeverPull, Message: msg}, time.Time{}
		}
	}
	key := c.Image
	if in, until, e := w.pullBO.inBackoffSince(key, w.pullBO.entries[key].lastUpdateOrZero()); in {
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		w.event(ctx, pod, corev1.EventTypeNormal, "BackOff", msg)
		return "", &corev1.ContainerStateWaiting{Reason: reasonImagePullBackOff, Message: msg + ": " + e.message}, until
	}
	w.event(ctx, pod, corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.Image))
	start := w.r.clock.Now()
	ref, err := w.pull(cctx, pod, spec)
	if err != nil {
		now := w.r.clock.Now()
		msg := fmt.Sprintf("Failed to pull image %q: %v", c.Image, err)
		w.pullBO.next(key, now, reasonErrImagePull+": "+msg)
		w.event(ctx, pod, corev1.EventTypeWarning, "Failed", msg)
		w.event(ctx, pod, corev1.EventTypeWarning, "Failed", "Error: "+reasonErrImagePull)
		return "", &corev1.ContainerStateWaiting{Reason: reasonErrImagePull, Message: msg}, now.Add(w.pullBO.entries[key].delay)
	}
	w.pullBO.reset(key)
	w.event(ctx, pod, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in %s", c.Image, w.r.clock.Since(start).Round(time.Millisecond)))
	return ref, nil, time.Time{}
}

func (e *backoffEntry) lastUpdateOrZero() time.Time {
	if e == nil {
		return time.Time{}
	}
	return e.lastUpdate
}

// pull pulls with each matching credential of the pod's imagePullSecrets in turn (as the
// kubelet), anonymously if none matches.
func (w *worker) pull(ctx context.Context, pod *corev1.Pod, spec *runtimeapi.ImageSpec) (string, error) {
	auths := w.pullAuths(ctx, pod, spec.Image)
	if len(auths) == 0 {
		auths = []*runtimeapi.AuthConfig{nil}
	}
	var errs []error
	for _, a := range auths {
		resp, err := w.r.cfg.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec, Auth: a})
		if err == nil {
			return resp.ImageRef, nil
		}
		errs = append(errs, err)
	}
	return "", errors.Join(errs...)
}

// dockerAuth is one entry of a docker config.
type dockerAuth struct {
	Username      string `json:"username"`
	Password      string `json:"password"`
	Auth          string `json:"auth"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// pullAuths returns the credentials of the pod's pull secrets that match the image's
// registry, in secret order.
func (w *worker) pullAuths(ctx context.Context, pod *corev1.Pod, image string) []*runtimeapi.AuthConfig {
	host, repo := registryHost(image)
	var out []*runtimeapi.AuthConfig
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, ok, err := w.r.cfg.Objects.Secret(ctx, pod.Namespace, ref.Name)
		if err != nil || !ok {
			w.event(ctx, pod, corev1.EventTypeWarning, "FailedToRetrieveImagePullSecret",
				fmt.Sprintf("Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", ref.Name))
			continue
		}
		entries, err := dockerAuths(s)
		if err != nil {
			w.log.Warn("unusable image pull secret", "secret", ref.Name, "err", err)
			continue
		}
		for key, a := range entries {
			if !registryMatches(key, host, repo) {
				continue
			}
			ac := &runtimeapi.AuthConfig{
				Username: a.Username, Password: a.Password, ServerAddress: host,
				IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
			}
			if a.Auth != "" && ac.Username == "" {
				if b, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
					ac.Username, ac.Password, _ = strings.Cut(string(b), ":")
				}
			}
			out = append(out, ac)
		}
	}
	return out
}

func dockerAuths(s *corev1.Secret) (map[string]dockerAuth, error) {
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		var cfg struct {
			Auths map[string]dockerAuth `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", corev1.DockerConfigJsonKey, err)
		}
		return cfg.Auths, nil
	case corev1.SecretTypeDockercfg:
		var cfg map[string]dockerAuth
		if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", corev1.DockerConfigKey, err)
		}
		return cfg, nil
	}
	return nil, fmt.Errorf("secret type %q is not a docker config", s.Type)
}

// registryMatches is the kubelet's credential key matching: a scheme and trailing slash
// are ignored, the host may use globs (*.example.com), and a key with a path matches
// repositories under it.
func registryMatches(key, host, repo string) bool {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	key = strings.TrimSuffix(key, "/")
	kHost, kPath, _ := strings.Cut(key, "/")
	if kHost == "index.docker.io" || kHost == "registry-1.docker.io" {
		kHost, kPath = "docker.io", strings.TrimPrefix(kPath, "v1")
		kPath = strings.Trim(kPath, "/")
	}
	if ok, _ := path.Match(kHost, host); !ok {
		return false
	}
	return kPath == "" || repo == kPath || strings.HasPrefix(repo, kPath+"/")
}
