package registry

import (
	"context"
	"sort"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
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
	return each(r, refs, func(ref string) SizesResult { return r.sizesOne(ctx, ref, kc) })
}

func (r Resolver) sizesOne(ctx context.Context, ref string, kc authn.Keychain) SizesResult {
	parsed, opts, cancel, err := r.lookup(ctx, ref, remote.WithAuthFromKeychain(kc))
	defer cancel()
	if err != nil {
		return SizesResult{Err: err}
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
		n, err := imageBytes(img)
		if err != nil {
			return SizesResult{Err: err}
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
		return SizesResult{Sizes: []Size{{Platform: platform, Bytes: n}}}
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
		n, err := imageBytes(img)
		if err != nil {
			return SizesResult{Err: err}
		}
		sizes = append(sizes, Size{Platform: d.Platform.String(), Bytes: n})
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i].Platform < sizes[j].Platform })
	return SizesResult{Sizes: sizes}
}

// imageBytes adds up the blobs an image's manifest names: its config and
// layers.
func imageBytes(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, Describe(err)
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// PlatformSize is ref's compressed size for one platform: what a node of
// that platform pulls.
func (r Resolver) PlatformSize(ctx context.Context, ref string, platform v1.Platform, auth authn.Authenticator) (int64, error) {
	parsed, opts, cancel, err := r.lookup(ctx, ref, remote.WithAuth(auth), remote.WithPlatform(platform))
	defer cancel()
	if err != nil {
		return 0, err
	}
	img, err := remote.Image(parsed, opts...)
	if err != nil {
		return 0, Describe(err)
	}
	return imageBytes(img)
}
