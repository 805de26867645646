package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/dev/imagebuild"
)

func pushImageCmd() *cobra.Command {
	var pf pushFlags
	var repoTag string
	var platforms []string
	cmd := &cobra.Command{
		Use:   "push-image",
		Short: "Build the project's image (kip and kip-sleep, non-root, no shell) and push it",
		Long: `Build the project's image and push it. Each --platform ARCH=DIR takes the
kip and kip-sleep binaries of that architecture from DIR; several make a
multi-architecture index.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ps []imagebuild.Platform
			for _, p := range platforms {
				arch, dir, ok := strings.Cut(p, "=")
				if !ok {
					return fmt.Errorf("--platform %q: want ARCH=DIR", p)
				}
				ps = append(ps, imagebuild.Platform{Arch: arch, Kip: filepath.Join(dir, "kip"), KipSleep: filepath.Join(dir, "kip-sleep")})
			}
			var t remote.Taggable
			var err error
			if len(ps) == 1 {
				t, err = imagebuild.KipImage(ps[0])
			} else {
				t, err = imagebuild.KipIndex(ps)
			}
			if err != nil {
				return err
			}
			ref, err := pf.push(repoTag, t)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref.String())
			return nil
		},
	}
	pf.bind(cmd)
	cmd.Flags().StringVar(&repoTag, "image", "kip:dev", "repository:tag in the registry")
	cmd.Flags().StringSliceVar(&platforms, "platform", []string{"amd64=bin"}, "ARCH=DIR holding kip and kip-sleep")
	return cmd
}
