package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/dev/imagebuild"
)

func pushSamplesCmd() *cobra.Command {
	var pf pushFlags
	var repo, tag, sleep, nameRegistry string
	var count, layers int
	var sizeMB int64
	cmd := &cobra.Command{
		Use:   "push-samples",
		Short: "Push workspace-like images of random content, and print their IMAGES value",
		RunE: func(cmd *cobra.Command, _ []string) error {
			sleepFile, err := imagebuild.FileFromDisk(sleep, "/bin/sleep", 0o755)
			if err != nil {
				return err
			}
			var entries []string
			for i := 1; i <= count; i++ {
				img, err := imagebuild.SampleImage(sizeMB<<20, layers, sleepFile)
				if err != nil {
					return err
				}
				entry := fmt.Sprintf("%s%d", filepath.Base(repo), i)
				ref, err := pf.push(fmt.Sprintf("%s%d:%s", repo, i, tag), img)
				if err != nil {
					return err
				}
				named := ref.String()
				if nameRegistry != "" {
					named = nameRegistry + "/" + fmt.Sprintf("%s%d:%s", repo, i, tag)
				}
				entries = append(entries, entry+"="+named)
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(entries, ";"))
			return nil
		},
	}
	pf.bind(cmd)
	cmd.Flags().StringVar(&repo, "repo", "ws/app", "repository prefix; images are PREFIX1, PREFIX2, ...")
	cmd.Flags().StringVar(&nameRegistry, "name-registry", "", "registry host:port to name the images by in the output (default: --registry)")
	cmd.Flags().StringVar(&tag, "tag", "v1", "tag of every image")
	cmd.Flags().IntVar(&count, "count", 3, "number of images")
	cmd.Flags().Int64Var(&sizeMB, "size-mb", 20, "size of each image in MB (random content)")
	cmd.Flags().IntVar(&layers, "layers", 3, "random layers per image")
	cmd.Flags().StringVar(&sleep, "kip-sleep", "bin/kip-sleep", "the kip-sleep binary, added as /bin/sleep")
	return cmd
}
