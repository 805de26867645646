package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/dev/imagebuild"
)

func pushPauseCmd() *cobra.Command {
	var pf pushFlags
	var repoTag, sleep string
	cmd := &cobra.Command{
		Use:   "push-pause",
		Short: "Push a pod sandbox (pause) image made of the static sleeper",
		RunE: func(cmd *cobra.Command, _ []string) error {
			img, err := imagebuild.PauseImage(sleep)
			if err != nil {
				return err
			}
			ref, err := pf.push(repoTag, img)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref.String())
			return nil
		},
	}
	pf.bind(cmd)
	cmd.Flags().StringVar(&repoTag, "image", "pause:3.10", "repository:tag in the registry")
	cmd.Flags().StringVar(&sleep, "kip-sleep", "bin/kip-sleep", "the kip-sleep binary")
	return cmd
}
