package registry

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kip-image-puller/kip/internal/dev/registrytest"
)

// TestSizes: an image's config and layers added up, per platform of an
// index (attestations left out), or from the config of an image without
// one; a lookup that fails says why, per reference.
func TestSizes(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Serve(t, "", "")
	platformImage := func(os, arch string, layers int64) v1.Image {
		t.Helper()
		img, err := random.Image(1000, layers)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf.OS, cf.Architecture = os, arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		return img
	}
	want := func(img v1.Image) int64 {
		t.Helper()
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		n := m.Config.Size
		for _, l := range m.Layers {
			n += l.Size
		}
		return n
	}

	single := platformImage("linux", "arm64", 2)
	registrytest.PushImage(t, reg+"/ws/single:1", single, authn.Anonymous)

	amd, arm := platformImage("linux", "amd64", 3), platformImage("linux", "arm64", 1)
	attestation := platformImage("unknown", "unknown", 1)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: attestation, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}},
	)
	multi, err := name.ParseReference(reg + "/ws/multi:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(multi, idx); err != nil {
		t.Fatal(err)
	}

	refs := []string{reg + "/ws/single:1", reg + "/ws/multi:1", reg + "/ws/missing:1"}
	anonymous, _ := Keychain(ctx, nil)
	got := Resolver{Timeout: 5 * time.Second, Parallel: 2}.Sizes(ctx, refs, anonymous)
	if s := got[refs[0]]; s.Err != nil || fmt.Sprint(s.Sizes) != fmt.Sprint([]Size{{"linux/arm64", want(single)}}) {
		t.Errorf("single: %+v", s)
	}
	if s := got[refs[1]]; s.Err != nil || fmt.Sprint(s.Sizes) != fmt.Sprint([]Size{{"linux/amd64", want(amd)}, {"linux/arm64", want(arm)}}) {
		t.Errorf("multi: %+v", s)
	}
	for _, tc := range []struct {
		ref  string
		arch string
		want int64
	}{{refs[1], "arm64", want(arm)}, {refs[1], "amd64", want(amd)}, {refs[0], "arm64", want(single)}} {
		n, err := (Resolver{Timeout: 5 * time.Second}).PlatformSize(ctx, tc.ref, v1.Platform{OS: "linux", Architecture: tc.arch}, authn.Anonymous)
		if err != nil || n != tc.want {
			t.Errorf("PlatformSize(%s, %s) = %d, %v; want %d", tc.ref, tc.arch, n, err, tc.want)
		}
	}
	if _, err := (Resolver{Timeout: 5 * time.Second}).PlatformSize(ctx, refs[1], v1.Platform{OS: "linux", Architecture: "s390x"}, authn.Anonymous); err == nil {
		t.Error("PlatformSize of a platform the index lacks: no error")
	}
	if s := got[refs[2]]; s.Err == nil || !strings.Contains(s.Err.Error(), "404") || len(s.Sizes) != 0 {
		t.Errorf("missing: %+v", s)
	}
}
