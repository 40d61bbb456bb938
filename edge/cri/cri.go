// Package cri is edgecore's client of the container runtime's CRI gRPC API. For now it answers
// what the node status needs (the runtime's name and version, which also proves it is up);
// Edged builds pods on the same connection.
package cri

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/nodestatus"
)

// maxMessageSize bounds what the runtime may send in one answer (as the kubelet's 16 MiB).
const maxMessageSize = 16 << 20

// callTimeout bounds each call, so a hung runtime reads as unreachable rather than stalling
// the caller.
const callTimeout = 5 * time.Second

// Client is a CRI client. The connection is made lazily and re-established by gRPC, so a
// runtime that starts after edgecore, or restarts, is picked up without a new Client.
type Client struct {
	conn    *grpc.ClientConn
	runtime runtimeapi.RuntimeServiceClient
	images  runtimeapi.ImageServiceClient
}

// New returns a client for endpoint (unix:///path.sock); it does not connect yet.
func New(endpoint string) (*Client, error) {
	conn, err := grpc.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize)))
	if err != nil {
		return nil, fmt.Errorf("cri: %s: %w", endpoint, err)
	}
	return &Client{conn: conn, runtime: runtimeapi.NewRuntimeServiceClient(conn), images: runtimeapi.NewImageServiceClient(conn)}, nil
}

// Version returns the runtime's name and version ("containerd", "v1.7.24").
func (c *Client) Version(ctx context.Context) (name, version string, err error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	v, err := c.runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "", "", fmt.Errorf("cri: version: %w", err)
	}
	return v.RuntimeName, v.RuntimeVersion, nil
}

// Images lists the runtime's images for the node status: names (tags and digests) and size,
// largest first, at most nodestatus.MaxImages (50), as the kubelet reports them.
func (c *Client) Images(ctx context.Context) ([]corev1.ContainerImage, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	r, err := c.images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, fmt.Errorf("cri: list images: %w", err)
	}
	out := make([]corev1.ContainerImage, 0, len(r.Images))
	for _, im := range r.Images {
		names := append(slices.Clone(im.RepoTags), im.RepoDigests...)
		if len(names) == 0 {
			continue
		}
		out = append(out, corev1.ContainerImage{Names: names, SizeBytes: int64(im.Size)})
	}
	slices.SortStableFunc(out, func(a, b corev1.ContainerImage) int { return cmp.Compare(b.SizeBytes, a.SizeBytes) })
	if len(out) > nodestatus.MaxImages {
		out = out[:nodestatus.MaxImages]
	}
	return out, nil
}

// Runtime is the CRI runtime service on this connection.
func (c *Client) Runtime() runtimeapi.RuntimeServiceClient { return c.runtime }

// ImageService is the CRI image service on this connection.
func (c *Client) ImageService() runtimeapi.ImageServiceClient { return c.images }

// ExecSync runs cmd in a container and waits for it (probes and hooks): timeout bounds the
// command in the runtime, and the call gets a little longer so the runtime's answer wins.
func (c *Client) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int32, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+callTimeout)
	defer cancel()
	r, err := c.runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{
		ContainerId: containerID, Cmd: cmd, Timeout: int64((timeout + time.Second - 1) / time.Second),
	})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("cri: exec in %s: %w", containerID, err)
	}
	return r.Stdout, r.Stderr, r.ExitCode, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }
