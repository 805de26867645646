package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/dev/localcluster"
)

func workspaceCmd() *cobra.Command {
	var clusterDir, node, image, podName string
	cmd := &cobra.Command{
		Use:   "workspace-start --image IMAGE",
		Short: "Start a workspace-like pod on a node and print the seconds until it is Ready",
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := localcluster.Load(clusterDir)
			if err != nil {
				return err
			}
			d, err := e.StartWorkspace(podName, node, image)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%.1f\n", d.Seconds())
			return nil
		},
	}
	cmd.Flags().StringVar(&clusterDir, "cluster-dir", localcluster.DefaultDir, "the local cluster's directory")
	cmd.Flags().StringVar(&node, "node", "node1", "node to run on")
	cmd.Flags().StringVar(&image, "image", "", "the workspace image")
	cmd.Flags().StringVar(&podName, "name", "workspace", "pod name (namespace default)")
	_ = cmd.MarkFlagRequired("image")
	return cmd
}
