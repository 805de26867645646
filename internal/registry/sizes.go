package registry

import (
	"context"
	"fmt"
	"sort"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kip-image-puller/kip/internal/parallel"
)

// Size is an image's compressed size for one platform: its config and its
// layers, as its manifest gives them.
type Size struct {
	// Platform is os/architecture[/variant], from the index, or from the
	// config of an image without one ("unknown" when it names none).
	Platform string
	Bytes    int64
}

// UnpackFactor estimates an image's bytes on a node from its compressed
// size: the runtime keeps the compressed layers, and their unpacked
// snapshots take about twice as much again.
const UnpackFactor = 3

// SizesResult is the outcome of looking up one reference's sizes.
type SizesResult struct {
	// Sizes, one per platform, sorted by platform.
	Sizes []Size
	Err   error
}

// Sizes reads each reference's manifest (and, for an index, the manifest of
// each platform it lists) and adds up its blobs. It never fails as a whole.
func (r Resolver) Sizes(ctx context.Context, refs []string, kc authn.Keychain) map[string]SizesResult {
	results := parallel.Map(refs, r.Parallel, func(ref string) SizesResult { return r.sizesOne(ctx, ref, kc) })
	out := make(map[string]SizesResult, len(refs))
	for i, ref := range refs {
		out[ref] = results[i]
	}
	return out
}

func (r Resolver) sizesOne(ctx context.Context, ref string, kc authn.Keychain) SizesResult {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return SizesResult{Err: fmt.Errorf("parse %q: %w", ref, err)}
	}
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	if r.Transport != nil {
		opts = append(opts, remote.WithTransport(r.Transport))
	}
	desc, err := remote.Get(parsed, opts...)
	if err != nil {
		return SizesResult{Err: Describe(err)}
	}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return SizesResult{Err: Describe(err)}
		}
		m, err := img.Manifest()
		if err != nil {
			return SizesResult{Err: Describe(err)}
		}
		// The config says the platform of an image without an index.
		cf, err := img.ConfigFile()
		if err != nil {
			return SizesResult{Err: Describe(err)}
		}
		platform := "unknown"
		if p := cf.Platform(); p != nil {
			platform = p.String()
		}
		return SizesResult{Sizes: []Size{{Platform: platform, Bytes: manifestBytes(m)}}}
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return SizesResult{Err: Describe(err)}
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return SizesResult{Err: Describe(err)}
	}
	var sizes []Size
	for _, d := range im.Manifests {
		if d.Platform == nil || d.Platform.OS == "unknown" { // attestations
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return SizesResult{Err: Describe(err)}
		}
		m, err := img.Manifest()
		if err != nil {
			return SizesResult{Err: Describe(err)}
		}
		sizes = append(sizes, Size{Platform: d.Platform.String(), Bytes: manifestBytes(m)})
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i].Platform < sizes[j].Platform })
	return SizesResult{Sizes: sizes}
}

// manifestBytes adds up the blobs a manifest names: its config and layers.
func manifestBytes(m *v1.Manifest) int64 {
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// PlatformSize is ref's compressed size for one platform: what a node of
// that platform pulls.
func (r Resolver) PlatformSize(ctx context.Context, ref string, platform v1.Platform, auth authn.Authenticator) (int64, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return 0, fmt.Errorf("parse %q: %w", ref, err)
	}
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth), remote.WithPlatform(platform)}
	if r.Transport != nil {
		opts = append(opts, remote.WithTransport(r.Transport))
	}
	img, err := remote.Image(parsed, opts...)
	if err != nil {
		return 0, Describe(err)
	}
	m, err := img.Manifest()
	if err != nil {
		return 0, Describe(err)
	}
	return manifestBytes(m), nil
}
