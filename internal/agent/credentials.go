package agent

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"

	"github.com/kip-image-puller/kip/internal/registry"
)

// KeychainCredentials finds each reference's credential in kc (built from
// the pull secrets by registry.Keychain), which hands a login only to the
// registry it names.
func KeychainCredentials(kc authn.Keychain) Credentials {
	return func(ref string) (*Credential, error) {
		r, err := name.ParseReference(ref)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", ref, err)
		}
		auth, err := kc.Resolve(r.Context())
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", r.Context().RegistryStr(), err)
		}
		if auth == authn.Anonymous {
			return nil, nil
		}
		cfg, err := auth.Authorization()
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", r.Context().RegistryStr(), err)
		}
		if *cfg == (authn.AuthConfig{}) {
			return nil, nil
		}
		return &Credential{Username: cfg.Username, Password: cfg.Password, Auth: cfg.Auth,
			IdentityToken: cfg.IdentityToken, RegistryToken: cfg.RegistryToken}, nil
	}
}

// MountedPullSecrets are the pull secrets mounted under Dir, one folder
// per Secret. The kubelet rewrites a mounted Secret in place when it
// changes, so each lookup reads the files again (a few small files, once
// per pull attempt) and rebuilds the keychain when their content changed:
// a rotated secret is used on the next attempt, with no restart.
type MountedPullSecrets struct {
	Dir   string
	Names []string
	// Changed, when set, hears the problems after each change of content.
	Changed func(problems []string)

	mu       sync.Mutex
	sum      [sha256.Size]byte // of the files the keychain was built from
	creds    Credentials
	problems []string
}

// Credentials finds the credential for ref in the secrets as they are now.
func (m *MountedPullSecrets) Credentials(ref string) (*Credential, error) {
	m.mu.Lock()
	m.refresh()
	creds := m.creds
	m.mu.Unlock()
	return creds(ref)
}

// Problems names each secret that cannot be used, as the files are now.
func (m *MountedPullSecrets) Problems() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refresh()
	return m.problems
}

// refresh reads the secrets, and rebuilds the keychain if they changed.
// The caller holds mu.
func (m *MountedPullSecrets) refresh() {
	h := sha256.New()
	var secrets []corev1.Secret
	var problems []string
	for _, name := range m.Names {
		s, err := registry.ReadMountedSecret(m.Dir, name)
		_, _ = fmt.Fprintf(h, "%s\x00%s\x00", name, s.Type)
		for _, key := range slices.Sorted(maps.Keys(s.Data)) {
			_, _ = fmt.Fprintf(h, "%s\x00%d\x00", key, len(s.Data[key]))
			h.Write(s.Data[key])
		}
		if err != nil {
			_, _ = fmt.Fprintf(h, "%v\x00", err)
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		secrets = append(secrets, s)
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	if m.creds != nil && sum == m.sum {
		return
	}
	kc, bad := registry.Keychain(context.Background(), secrets)
	for name, err := range bad {
		problems = append(problems, fmt.Sprintf("%s: %v", name, err))
	}
	sort.Strings(problems)
	m.sum, m.creds, m.problems = sum, KeychainCredentials(kc), problems
	if m.Changed != nil {
		m.Changed(problems)
	}
}
