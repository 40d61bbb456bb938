// Package admission is cloudcore's mutating admission webhook for pods. It gives pods bound for
// edge nodes NoExecute tolerations for node.kubernetes.io/unreachable and
// node.kubernetes.io/not-ready, so that an edge node losing its cloud link does not get its pods
// evicted after the 300 s that the DefaultTolerationSeconds admission plugin grants every pod.
//
// Tolerations can only be decided at pod creation: the taint manager evicts after the minimum
// tolerationSeconds among matching tolerations and an update may only add tolerations, so a
// 300 s toleration, once stored, cannot be outvoted.
//
// The kube-apiserver runs its built-in DefaultTolerationSeconds plugin before any mutating
// webhook (see AllOrderedPlugins in k8s.io/kubernetes/pkg/kubeapiserver/options), so the pod this
// webhook sees normally already carries the plugin's two tolerations. A toleration that is exactly
// the plugin's (operator Exists, effect NoExecute, no value, [APIServerDefaultSeconds]) is
// therefore treated as "no choice made" and replaced in place; any other toleration covering the
// key is the user's choice and left alone. A user who wants exactly 300 s must write another
// value (299, 301) or it is replaced too.
//
// [Policy] decides which tolerationSeconds a pod gets (see [Policy.Decide]), [Handler] serves the
// admission.k8s.io/v1 AdmissionReview, [WebhookConfiguration] and [Ensure] register it. The
// webhook never rejects a pod and is registered with failurePolicy Ignore: pods created while
// cloudcore is unreachable keep the plugin's 300 s (docs/autonomy.md).
package admission
