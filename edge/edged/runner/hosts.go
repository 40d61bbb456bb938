package runner

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

// maxHostHostsFile bounds how much of the host's /etc/hosts a hostNetwork pod's copy takes.
const maxHostHostsFile = 1 << 20

// hostsMount writes the pod's /etc/hosts as the kubelet does and returns the mount that puts
// it in a container: the pod's own name on its IP and the pod's hostAliases (for a
// hostNetwork pod, the host's file plus the aliases). A container that mounts something at
// /etc/hosts itself keeps it.
func (w *worker) hostsMount(pod *corev1.Pod, c *corev1.Container, facts edged.Facts) (*runtimeapi.Mount, error) {
	for _, vm := range c.VolumeMounts {
		if filepath.Clean(vm.MountPath) == "/etc/hosts" {
			return nil, nil
		}
	}
	var b bytes.Buffer
	if pod.Spec.HostNetwork {
		f, err := os.Open(w.r.cfg.HostsFile)
		if err != nil {
			return nil, fmt.Errorf("hostAliases: reading the host's hosts file: %w", err)
		}
		_, err = io.Copy(&b, io.LimitReader(f, maxHostHostsFile))
		_ = f.Close()
		if err != nil {
			return nil, fmt.Errorf("hostAliases: reading the host's hosts file: %w", err)
		}
		if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
			b.WriteByte('\n')
		}
	} else {
		b.WriteString("# Kubernetes-managed hosts file.\n" +
			"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
		if facts.PodIP != "" {
			host := pod.Name
			if pod.Spec.Hostname != "" {
				host = pod.Spec.Hostname
			}
			if pod.Spec.Subdomain != "" {
				fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.cluster.local\t%s\n", facts.PodIP, host, pod.Spec.Subdomain, pod.Namespace, host)
			} else {
				fmt.Fprintf(&b, "%s\t%s\n", facts.PodIP, host)
			}
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	path := filepath.Join(w.r.cfg.PodsDir, string(pod.UID), "etc-hosts")
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("hosts file: %w", err)
	}
	// Written in place, not renamed: the file is bind-mounted into running containers, and a
	// rename would leave them looking at the old inode.
	if old, err := os.ReadFile(path); err != nil || !bytes.Equal(old, b.Bytes()) {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("hosts file: %w", err)
		}
	}
	return &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: path}, nil
}
