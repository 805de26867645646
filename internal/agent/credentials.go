package agent

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
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
