// Package registry resolves image tags to the digests their registries serve
// now, with the credentials of Kubernetes pull secrets.
package registry

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"

	"github.com/kip-image-puller/kip/internal/parallel"
)

// Result is the outcome of resolving one reference.
type Result struct {
	Digest string
	Err    error
}

// Resolver resolves tags to digests.
type Resolver struct {
	// Timeout bounds each lookup.
	Timeout time.Duration
	// Parallel bounds the lookups in flight.
	Parallel int
	// Transport carries the requests; nil means go-containerregistry's
	// default. Tests set one that reaches loopback only.
	Transport http.RoundTripper
}

// Default is a resolver with sensible bounds.
var Default = Resolver{Timeout: 30 * time.Second, Parallel: 4}

// Keychain turns pull secrets into a keychain; secrets of other types are ignored.
func Keychain(ctx context.Context, secrets []corev1.Secret) (authn.Keychain, error) {
	if len(secrets) == 0 {
		return authn.NewMultiKeychain(), nil
	}
	return kauth.NewFromPullSecrets(ctx, secrets)
}

// Resolve looks up the current digest of every reference. It never fails as
// a whole: each reference carries its own result.
func (r Resolver) Resolve(ctx context.Context, refs []string, kc authn.Keychain) map[string]Result {
	results := parallel.Map(refs, r.Parallel, func(ref string) Result { return r.resolveOne(ctx, ref, kc) })
	out := make(map[string]Result, len(refs))
	for i, ref := range refs {
		out[ref] = results[i]
	}
	return out
}

func (r Resolver) resolveOne(ctx context.Context, ref string, kc authn.Keychain) Result {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return Result{Err: fmt.Errorf("parse %q: %w", ref, err)}
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
	desc, err := remote.Head(parsed, opts...)
	if err == nil {
		return Result{Digest: desc.Digest.String()}
	}
	// A HEAD response has no body to say why; some registries do not
	// answer HEAD at all. A GET gives the digest or the registry's reason.
	full, getErr := remote.Get(parsed, opts...)
	if getErr != nil {
		return Result{Err: getErr}
	}
	return Result{Digest: full.Digest.String()}
}
