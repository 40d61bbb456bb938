package tokens

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func projected(sources ...corev1.VolumeProjection) corev1.Volume {
	return corev1.Volume{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: sources}}}
}

func satSource(audience string, seconds *int64, path string) corev1.VolumeProjection {
	return corev1.VolumeProjection{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
		Audience: audience, ExpirationSeconds: seconds, Path: path,
	}}
}

func ptr[T any](v T) *T { return &v }

func TestRequests(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
		projected(
			corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{}},
			satSource("", nil, "token"),
		),
		projected(
			satSource("", ptr[int64](3600), "again"),     // same as the default: deduplicated
			satSource("vault", ptr[int64](600), "vault"), // new
			satSource("vault", ptr[int64](7200), "vault-long"),
			satSource("vault", ptr[int64](600), "vault-2"), // duplicate
		),
	}}}
	want := []Request{
		{Audience: "", ExpirationSeconds: 3600, Path: "token"},
		{Audience: "vault", ExpirationSeconds: 600, Path: "vault"},
		{Audience: "vault", ExpirationSeconds: 7200, Path: "vault-long"},
	}
	if got := Requests(pod); !slices.Equal(got, want) {
		t.Fatalf("Requests = %+v, want %+v", got, want)
	}
	if got := ServiceAccountName(pod); got != "default" {
		t.Errorf("ServiceAccountName = %q, want default", got)
	}
	pod.Spec.ServiceAccountName = "builder"
	if got := ServiceAccountName(pod); got != "builder" {
		t.Errorf("ServiceAccountName = %q, want builder", got)
	}
}

func TestRequestsNone(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{
		projected(corev1.VolumeProjection{Secret: &corev1.SecretProjection{}}),
		{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "x"}}},
	}}}
	if got := Requests(pod); got != nil {
		t.Fatalf("Requests = %+v, want nil", got)
	}
	if got := Requests(&corev1.Pod{}); got != nil {
		t.Fatalf("Requests(empty pod) = %+v, want nil", got)
	}
}
