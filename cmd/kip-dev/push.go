package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
)

// pushFlags are the destination flags shared by the push commands.
type pushFlags struct {
	registry, user, passwordFile string
}

func (p *pushFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.registry, "registry", "127.0.0.1:5001", "registry host:port")
	cmd.Flags().StringVar(&p.user, "user", "", "basic auth user")
	cmd.Flags().StringVar(&p.passwordFile, "password-file", "", "file holding the password of --user")
}

func (p *pushFlags) auth() (authn.Authenticator, error) {
	if p.user == "" {
		return authn.Anonymous, nil
	}
	pw, err := os.ReadFile(p.passwordFile)
	if err != nil {
		return nil, fmt.Errorf("--password-file: %w", err)
	}
	return &authn.Basic{Username: p.user, Password: strings.TrimSpace(string(pw))}, nil
}

// push pushes an image or an index as repoTag in the registry, and returns
// its reference there.
func (p *pushFlags) push(repoTag string, t remote.Taggable) (name.Reference, error) {
	auth, err := p.auth()
	if err != nil {
		return nil, err
	}
	ref, err := name.ParseReference(p.registry + "/" + repoTag)
	if err != nil {
		return nil, err
	}
	if err := remote.Push(ref, t, remote.WithAuth(auth)); err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}
