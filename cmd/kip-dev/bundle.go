package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/dev/bundle"
)

func bundleCmd() *cobra.Command {
	var manifests, out, version string
	cmd := &cobra.Command{
		Use:   "bundle",
		Short: "Write the operator's OLM bundle from its kustomize manifests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := bundle.Render(manifests)
			if err != nil {
				return err
			}
			files, err := bundle.Make(objs, version)
			if err != nil {
				return err
			}
			if err := os.RemoveAll(out); err != nil {
				return err
			}
			paths := make([]string, 0, len(files))
			for p := range files {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			for _, p := range paths {
				dst := filepath.Join(out, p)
				if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
					return err
				}
				if err := os.WriteFile(dst, files[p], 0o644); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), dst)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&manifests, "manifests", "deploy/operator", "the operator's kustomization")
	cmd.Flags().StringVar(&out, "out", "deploy/operator/bundle", "bundle directory to (re)write")
	cmd.Flags().StringVar(&version, "version", bundle.Version, "bundle version (semver)")
	return cmd
}
