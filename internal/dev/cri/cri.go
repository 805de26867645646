// Package cri talks to a node's container runtime through the Kubernetes
// Container Runtime Interface (k8s.io/cri-api): which images a node holds,
// pulling images directly, and stopping every pod of a runtime that is being
// torn down. The local test cluster and the benchmarks use it.
package cri

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kip-image-puller/kip/internal/parallel"
)

// Client is a connection to one runtime's CRI socket.
type Client struct {
	conn    *grpc.ClientConn
	Images  runtimeapi.ImageServiceClient
	Runtime runtimeapi.RuntimeServiceClient
}

// Dial connects to a CRI socket path (with or without the unix:// prefix).
func Dial(socket string) (*Client, error) {
	target := socket
	if !strings.HasPrefix(target, "unix://") {
		target = "unix://" + target
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("CRI socket %s: %w", socket, err)
	}
	return &Client{conn: conn, Images: runtimeapi.NewImageServiceClient(conn), Runtime: runtimeapi.NewRuntimeServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// ImageRefs returns every tag and digest reference the runtime holds.
func (c *Client) ImageRefs(ctx context.Context) (map[string]bool, error) {
	refs, _, err := c.HeldAndPinned(ctx)
	return refs, err
}

// HeldAndPinned returns every tag and digest reference the runtime holds, and
// those of the images it reports as pinned (kept from the kubelet's image
// garbage collection), as `crictl images --pinned` shows them.
func (c *Client) HeldAndPinned(ctx context.Context) (held, pinned map[string]bool, err error) {
	resp, err := c.Images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, nil, err
	}
	held, pinned = map[string]bool{}, map[string]bool{}
	for _, img := range resp.Images {
		for _, ref := range append(append([]string{}, img.RepoTags...), img.RepoDigests...) {
			held[ref] = true
			if img.Pinned {
				pinned[ref] = true
			}
		}
	}
	return held, pinned, nil
}

// Has reports whether the runtime holds ref, a tag or a digest reference.
// Docker Hub short names are not expanded: the local cluster uses full
// registry references.
func Has(refs map[string]bool, ref string) bool {
	if refs[ref] {
		return true
	}
	if !strings.Contains(ref, "@") && !hasTag(ref) {
		return refs[ref+":latest"]
	}
	return false
}

func hasTag(ref string) bool {
	slash := strings.LastIndex(ref, "/")
	return strings.Contains(ref[slash+1:], ":")
}

// PullResult is the outcome of pulling one image.
type PullResult struct {
	Ref      string
	Duration time.Duration
	Err      error
}

// Pull pulls refs with at most parallelism pulls in flight, and returns the
// results in refs order.
func (c *Client) Pull(ctx context.Context, refs []string, parallelism int) []PullResult {
	return parallel.Map(refs, parallelism, func(ref string) PullResult {
		start := time.Now()
		_, err := c.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		return PullResult{Ref: ref, Duration: time.Since(start), Err: err}
	})
}

// RemoveImages removes refs from the runtime; images it does not hold are skipped.
func (c *Client) RemoveImages(ctx context.Context, refs []string) error {
	for _, ref := range refs {
		if _, err := c.Images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
			return fmt.Errorf("remove %s: %w", ref, err)
		}
	}
	return nil
}

// StopAllPods stops and removes every pod sandbox, which also releases its
// network namespace and mounts. It is how a test node is torn down.
func (c *Client) StopAllPods(ctx context.Context) (int, error) {
	resp, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return 0, err
	}
	for _, sb := range resp.Items {
		if _, err := c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return 0, fmt.Errorf("stop pod %s/%s: %w", sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err)
		}
		if _, err := c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return 0, fmt.Errorf("remove pod %s/%s: %w", sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err)
		}
	}
	return len(resp.Items), nil
}
