package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/kip-image-puller/kip/internal/privilege"
)

// Sockets are the usual CRI sockets, probed in this order: containerd
// (also k3s's), CRI-O, cri-dockerd; the ones agent mode may mount.
var Sockets = privilege.KnownSockets

// CRI is a node's runtime reached through its CRI socket.
type CRI struct {
	// Socket is the socket's path as the agent sees it.
	Socket string
	// Name and Version are what the runtime said of itself.
	Name, Version string
	images        internalapi.ImageManagerService
	runtime       internalapi.RuntimeService
}

// Connect reaches the runtime at socket, or when socket is empty the first
// of Sockets under root (the host's root as mounted into the agent, "/"
// outside a pod) that exists and answers Version. The error names every
// path tried and why each failed.
func Connect(ctx context.Context, socket, root string, timeout time.Duration) (*CRI, error) {
	candidates := []string{socket}
	if socket == "" {
		candidates = nil
		for _, s := range Sockets {
			candidates = append(candidates, filepath.Join(root, s))
		}
	}
	var tried []string
	for _, path := range candidates {
		if _, err := os.Stat(path); err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", path, errors.Unwrap(err)))
			continue
		}
		c, err := dial(ctx, path, timeout)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		return c, nil
	}
	return nil, fmt.Errorf("no container runtime answered the CRI Version call: %s", strings.Join(tried, "; "))
}

func dial(ctx context.Context, path string, timeout time.Duration) (*CRI, error) {
	endpoint := "unix://" + path
	rs, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(timeout).Build(ctx)
	if err != nil {
		return nil, err
	}
	v, err := rs.Version(ctx, "v1")
	if err != nil {
		_ = rs.Close(ctx)
		return nil, err
	}
	is, err := remote.NewRemoteImageServiceBuilder().WithEndpoint(endpoint).WithConnectionTimeout(timeout).Build(ctx)
	if err != nil {
		_ = rs.Close(ctx)
		return nil, err
	}
	return &CRI{Socket: path, Name: v.RuntimeName, Version: v.RuntimeVersion, images: is, runtime: rs}, nil
}

// Close ends both connections.
func (c *CRI) Close(ctx context.Context) error {
	return errors.Join(c.images.Close(ctx), c.runtime.Close(ctx))
}

// Status implements Runtime: the CRI's ImageStatus, which matches a
// reference with a digest by that digest.
func (c *CRI) Status(ctx context.Context, ref string) (Held, bool, error) {
	resp, err := c.images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil {
		return Held{}, false, err
	}
	img := resp.GetImage()
	if img == nil {
		return Held{}, false, nil
	}
	return Held{ID: img.GetId(), RepoDigests: img.GetRepoDigests(), Pinned: img.GetPinned()}, true, nil
}

// Pull implements Runtime.
func (c *CRI) Pull(ctx context.Context, ref string, cred *Credential) error {
	var auth *runtimeapi.AuthConfig
	if cred != nil {
		auth = &runtimeapi.AuthConfig{Username: cred.Username, Password: cred.Password, Auth: cred.Auth,
			IdentityToken: cred.IdentityToken, RegistryToken: cred.RegistryToken}
	}
	_, err := c.images.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, auth, nil)
	return err
}

// Holds implements Runtime with one ListImages call.
func (c *CRI) Holds(ctx context.Context, refs []string) (map[string]bool, error) {
	list, err := c.images.ListImages(ctx, nil)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, img := range list {
		for _, n := range append(img.GetRepoTags(), img.GetRepoDigests()...) {
			names[dockerName(n)] = true
		}
	}
	out := make(map[string]bool, len(refs))
	for _, r := range refs {
		out[r] = names[dockerName(r)]
	}
	return out, nil
}
