package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/images"
)

func newImagesCommand() *cobra.Command {
	var from []string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "images --from URL|FILE [--from ...]",
		Short: "Merge image lists (a dashboard's, external_images.txt) into an IMAGES value",
		Long: `Fetch and merge image lists: a workspace platform's dashboard API (a URL
ending in /dashboard/api: the images of its editors and of its airgap
samples' devfiles, as current che-operator reads them), a registry's
plugin-registry/v3/external_images.txt or devfile-registry/devfiles/
external_images.txt, or any plain list, one reference per line. Sort them,
drop repeats, and print an IMAGES value ready for the ConfigMap, the
KubernetesImagePuller resource or oc patch. Entries are named
<name>-<index>: the last path segment of the repository, lower-cased, '_'
turned into '-', cut to a DNS-1123 label, and the position from 0.

A line that is not an image reference is an error that names the source and
the line; nothing is skipped silently.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lists [][]string
			var problems []images.Problem
			for _, src := range from {
				refs, ps, err := images.Load(cmd.Context(), src, timeout, images.Read)
				if err != nil {
					return fmt.Errorf("--from %s: %w", src, err)
				}
				lists = append(lists, refs)
				problems = append(problems, ps...)
			}
			if len(problems) > 0 {
				for _, p := range problems {
					fmt.Fprintln(cmd.ErrOrStderr(), p.String())
				}
				return exitError{code: 1}
			}
			merged := images.Merge(lists...)
			if len(merged) == 0 {
				return fmt.Errorf("the lists hold no image")
			}
			fmt.Fprintln(cmd.OutOrStdout(), images.Value(merged))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&from, "from", nil, "an image list: a dashboard API URL (…/dashboard/api), another http(s) URL or a file; repeatable")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "time limit for each URL")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}
