// Package registry resolves image tags to the digests their registries serve
// now, with the credentials of Kubernetes pull secrets.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	kauth "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// Keychain turns pull secrets into a keychain. Each secret is read on its
// own, so one that is malformed, or not a pull secret at all, is returned in
// problems under its name while the others still serve their registries.
// A keychain hands each credential only to the registry it names.
func Keychain(ctx context.Context, secrets []corev1.Secret) (authn.Keychain, map[string]error) {
	var chains []authn.Keychain
	problems := map[string]error{}
	for _, s := range secrets {
		if err := checkPullSecret(s); err != nil {
			problems[s.Name] = err
			continue
		}
		kc, err := kauth.NewFromPullSecrets(ctx, []corev1.Secret{s})
		if err != nil {
			problems[s.Name] = fmt.Errorf("malformed %s: %w", pullSecretKey(s.Type), err)
			continue
		}
		chains = append(chains, kc)
	}
	return authn.NewMultiKeychain(chains...), problems
}

// checkPullSecret tells whether s is a pull secret that holds its key.
func checkPullSecret(s corev1.Secret) error {
	key := pullSecretKey(s.Type)
	if key == "" {
		return fmt.Errorf("type %q: expected %s or %s", s.Type, corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg)
	}
	if len(s.Data[key]) == 0 {
		return fmt.Errorf("no %s key", key)
	}
	return nil
}

func pullSecretKey(t corev1.SecretType) string {
	switch t {
	case corev1.SecretTypeDockerConfigJson:
		return corev1.DockerConfigJsonKey
	case corev1.SecretTypeDockercfg:
		return corev1.DockerConfigKey
	}
	return ""
}

// Resolve looks up the current digest of every reference. It never fails as
// a whole: each reference carries its own result.
func (r Resolver) Resolve(ctx context.Context, refs []string, kc authn.Keychain) map[string]Result {
	return each(r, refs, func(ref string) Result { return r.resolveOne(ctx, ref, kc) })
}

// each runs one for every reference, at most r.Parallel at once, and keys
// the results by reference.
func each[T any](r Resolver, refs []string, one func(ref string) T) map[string]T {
	results := parallel.Map(refs, r.Parallel, one)
	out := make(map[string]T, len(refs))
	for i, ref := range refs {
		out[ref] = results[i]
	}
	return out
}

// lookup parses ref and gives the options of one lookup of it under r's
// bounds (its timeout, its transport), with the options given; cancel
// ends the lookup's context.
func (r Resolver) lookup(ctx context.Context, ref string, given ...remote.Option) (name.Reference, []remote.Option, context.CancelFunc, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, nil, func() {}, fmt.Errorf("parse %q: %w", ref, err)
	}
	cancel := context.CancelFunc(func() {})
	if r.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
	}
	opts := append([]remote.Option{remote.WithContext(ctx)}, given...)
	if r.Transport != nil {
		opts = append(opts, remote.WithTransport(r.Transport))
	}
	return parsed, opts, cancel, nil
}

func (r Resolver) resolveOne(ctx context.Context, ref string, kc authn.Keychain) Result {
	parsed, opts, cancel, err := r.lookup(ctx, ref, remote.WithAuthFromKeychain(kc))
	defer cancel()
	if err != nil {
		return Result{Err: err}
	}
	desc, err := remote.Head(parsed, opts...)
	if err == nil {
		return Result{Digest: desc.Digest.String()}
	}
	// A HEAD response has no body to say why; some registries do not
	// answer HEAD at all. A GET gives the digest or the registry's reason.
	full, getErr := remote.Get(parsed, opts...)
	if getErr != nil {
		return Result{Err: Describe(getErr)}
	}
	return Result{Digest: full.Digest.String()}
}

// maxExcerpt bounds what of a registry's answer goes into an error.
const maxExcerpt = 160

// Describe shortens a lookup error for Events and logs: the HTTP status and
// the registry's error codes, never the response body verbatim (an HTML
// page, a stack trace, a token echoed back); other errors cut to a line.
func Describe(err error) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return errors.New(excerpt(err.Error()))
	}
	msg := fmt.Sprintf("HTTP %d %s", te.StatusCode, http.StatusText(te.StatusCode))
	var codes []string
	for _, d := range te.Errors {
		codes = append(codes, string(d.Code)+": "+d.Message)
	}
	if len(codes) > 0 {
		msg += ": " + excerpt(strings.Join(codes, "; "))
	}
	return errors.New(msg)
}

// excerpt keeps printable ASCII on one line, at most maxExcerpt bytes.
func excerpt(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r < ' ' || r > '~' }), " ")
	if len(s) > maxExcerpt {
		s = s[:maxExcerpt-3] + "..."
	}
	return s
}

// ReadMountedSecret reads the pull secret mounted at dir/name, as a Secret
// of the type its key tells.
func ReadMountedSecret(dir, name string) (corev1.Secret, error) {
	s := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, kind := range []struct {
		key string
		typ corev1.SecretType
	}{{corev1.DockerConfigJsonKey, corev1.SecretTypeDockerConfigJson}, {corev1.DockerConfigKey, corev1.SecretTypeDockercfg}} {
		data, err := os.ReadFile(filepath.Join(dir, name, kind.key))
		switch {
		case err == nil:
			s.Type, s.Data = kind.typ, map[string][]byte{kind.key: data}
			return s, nil
		case !errors.Is(err, fs.ErrNotExist):
			return s, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		return s, fmt.Errorf("not mounted in %s: name it in imagePullSecrets", dir)
	}
	return s, fmt.Errorf("no %s or %s key: the Secret does not exist, or is not a pull secret", corev1.DockerConfigJsonKey, corev1.DockerConfigKey)
}
