package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/kip-image-puller/kip/internal/agent/report"
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
	// FsPath is a folder on the runtime's image filesystem, as the agent
	// sees it, to measure the filesystem; empty when it cannot.
	FsPath  string
	images  internalapi.ImageManagerService
	runtime internalapi.RuntimeService
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
	return Held{ID: img.GetId(), RepoDigests: img.GetRepoDigests(), Pinned: img.GetPinned(), Size: int64(img.GetSize())}, true, nil //nolint:gosec // G115: an image's size fits an int64
}

// ImageFs implements Runtime: what the runtime's images take (CRI
// ImageFsInfo), and the filesystem's capacity and free space (statfs of
// FsPath, the image store as mounted into the agent; unknown without it).
func (c *CRI) ImageFs(ctx context.Context) (report.Disk, error) {
	resp, err := c.images.ImageFsInfo(ctx)
	if err != nil {
		return report.Disk{}, fmt.Errorf("the runtime's image filesystem (ImageFsInfo): %w", err)
	}
	var d report.Disk
	for _, fs := range resp.GetImageFilesystems() {
		d.ImagesBytes += int64(fs.GetUsedBytes().GetValue()) //nolint:gosec // G115: bytes on a disk fit an int64
	}
	if c.FsPath == "" {
		return d, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(c.FsPath, &st); err != nil {
		return d, fmt.Errorf("the image filesystem at %s: %w", c.FsPath, err)
	}
	bsize := int64(st.Bsize)                    //nolint:unconvert,nolintlint // int32 or uint32 on some architectures
	d.CapacityBytes = int64(st.Blocks) * bsize  //nolint:gosec // G115: bytes on a disk fit an int64
	d.AvailableBytes = int64(st.Bavail) * bsize //nolint:gosec // G115: idem
	return d, nil
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
