package graph

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func local(name string) corev1.LocalObjectReference { return corev1.LocalObjectReference{Name: name} }

func localPtr(name string) *corev1.LocalObjectReference {
	r := local(name)
	return &r
}

func volumePod(v corev1.VolumeSource) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "v", VolumeSource: v}}}}
}

func containerPod(c corev1.Container) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
}

func envCM(name string) []corev1.EnvVar {
	return []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{
		ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: local(name), Key: "k"}}}}
}

func envSecret(name string) []corev1.EnvVar {
	return []corev1.EnvVar{{Name: "B", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: local(name), Key: "k"}}}}
}

func TestPodReferences(t *testing.T) {
	optional := true
	tests := []struct {
		name        string
		pod         *corev1.Pod
		wantCMs     []string
		wantSecrets []string
		wantSA      string
	}{
		{name: "no references, service account defaults to default",
			pod: &corev1.Pod{}, wantSA: "default"},
		{name: "named service account",
			pod:    &corev1.Pod{Spec: corev1.PodSpec{ServiceAccountName: "builder"}},
			wantSA: "builder"},
		{name: "configMap volume",
			pod:     volumePod(corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: local("cm")}}),
			wantCMs: []string{"cm"}},
		{name: "optional configMap volume still counts",
			pod:     volumePod(corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: local("cm"), Optional: &optional}}),
			wantCMs: []string{"cm"}},
		{name: "secret volume",
			pod:         volumePod(corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}),
			wantSecrets: []string{"s"}},
		{name: "projected configMap, secret; token and downward API are not objects",
			pod: volumePod(corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: local("pcm")}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: local("ps")}},
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "a", Path: "token"}},
				{DownwardAPI: &corev1.DownwardAPIProjection{}},
			}}}),
			wantCMs: []string{"pcm"}, wantSecrets: []string{"ps"}},
		{name: "csi nodePublishSecretRef",
			pod:         volumePod(corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d", NodePublishSecretRef: localPtr("csi")}}),
			wantSecrets: []string{"csi"}},
		{name: "csi without secret",
			pod: volumePod(corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d"}})},
		{name: "flexVolume secretRef",
			pod:         volumePod(corev1.VolumeSource{FlexVolume: &corev1.FlexVolumeSource{Driver: "d", SecretRef: localPtr("flex")}}),
			wantSecrets: []string{"flex"}},
		{name: "azureFile secretName",
			pod:         volumePod(corev1.VolumeSource{AzureFile: &corev1.AzureFileVolumeSource{SecretName: "az"}}),
			wantSecrets: []string{"az"}},
		{name: "cephfs secretRef",
			pod:         volumePod(corev1.VolumeSource{CephFS: &corev1.CephFSVolumeSource{SecretRef: localPtr("ceph")}}),
			wantSecrets: []string{"ceph"}},
		{name: "cinder secretRef",
			pod:         volumePod(corev1.VolumeSource{Cinder: &corev1.CinderVolumeSource{SecretRef: localPtr("cinder")}}),
			wantSecrets: []string{"cinder"}},
		{name: "iscsi secretRef",
			pod:         volumePod(corev1.VolumeSource{ISCSI: &corev1.ISCSIVolumeSource{SecretRef: localPtr("iscsi")}}),
			wantSecrets: []string{"iscsi"}},
		{name: "rbd secretRef",
			pod:         volumePod(corev1.VolumeSource{RBD: &corev1.RBDVolumeSource{SecretRef: localPtr("rbd")}}),
			wantSecrets: []string{"rbd"}},
		{name: "scaleIO secretRef",
			pod:         volumePod(corev1.VolumeSource{ScaleIO: &corev1.ScaleIOVolumeSource{SecretRef: localPtr("scaleio")}}),
			wantSecrets: []string{"scaleio"}},
		{name: "storageos secretRef",
			pod:         volumePod(corev1.VolumeSource{StorageOS: &corev1.StorageOSVolumeSource{SecretRef: localPtr("storageos")}}),
			wantSecrets: []string{"storageos"}},
		{name: "persistentVolumeClaim is not a ConfigMap or Secret reference",
			pod: volumePod(corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "pvc"}})},
		{name: "container env valueFrom configMapKeyRef and secretKeyRef",
			pod:     containerPod(corev1.Container{Env: append(envCM("ecm"), envSecret("es")...)}),
			wantCMs: []string{"ecm"}, wantSecrets: []string{"es"}},
		{name: "plain env value and fieldRef are not references",
			pod: containerPod(corev1.Container{Env: []corev1.EnvVar{{Name: "X", Value: "v"},
				{Name: "Y", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}})},
		{name: "container envFrom configMapRef and secretRef",
			pod: containerPod(corev1.Container{EnvFrom: []corev1.EnvFromSource{
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: local("fcm"), Optional: &optional}},
				{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: local("fs")}},
			}}),
			wantCMs: []string{"fcm"}, wantSecrets: []string{"fs"}},
		{name: "init container env",
			pod: &corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{
				{Env: append(envCM("icm"), envSecret("is")...)}}}},
			wantCMs: []string{"icm"}, wantSecrets: []string{"is"}},
		{name: "ephemeral container env and envFrom",
			pod: &corev1.Pod{Spec: corev1.PodSpec{EphemeralContainers: []corev1.EphemeralContainer{
				{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
					Env:     envCM("ecm"),
					EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: local("efs")}}},
				}}}}},
			wantCMs: []string{"ecm"}, wantSecrets: []string{"efs"}},
		{name: "imagePullSecrets",
			pod:         &corev1.Pod{Spec: corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{local("pull1"), local("pull2")}}},
			wantSecrets: []string{"pull1", "pull2"}},
		{name: "empty names are ignored",
			pod: &corev1.Pod{Spec: corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{local("")},
				Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{NodePublishSecretRef: localPtr("")}}}}}}},
		{name: "duplicates across kinds and containers collapse, output sorted",
			pod: &corev1.Pod{Spec: corev1.PodSpec{
				Volumes: []corev1.Volume{
					{Name: "a", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: local("z")}}},
					{Name: "b", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "shared"}}},
				},
				Containers: []corev1.Container{
					{Env: append(envCM("z"), envSecret("shared")...)},
					{Env: append(envCM("a"), envSecret("shared")...)},
				},
				ImagePullSecrets: []corev1.LocalObjectReference{local("shared")},
			}},
			wantCMs: []string{"a", "z"}, wantSecrets: []string{"shared"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cms, secrets, sa := PodReferences(tt.pod)
			if !slices.Equal(cms, tt.wantCMs) {
				t.Errorf("configMaps = %q, want %q", cms, tt.wantCMs)
			}
			if !slices.Equal(secrets, tt.wantSecrets) {
				t.Errorf("secrets = %q, want %q", secrets, tt.wantSecrets)
			}
			want := tt.wantSA
			if want == "" {
				want = "default"
			}
			if sa != want {
				t.Errorf("serviceAccount = %q, want %q", sa, want)
			}
		})
	}
}
