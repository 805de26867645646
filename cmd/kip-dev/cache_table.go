package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/dev/cri"
	"github.com/kip-image-puller/kip/internal/dev/localcluster"
)

func cacheTableCmd() *cobra.Command {
	var clusterDir, images string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "cache-table --images IMAGES",
		Short: "Print which node's runtime holds which image, asking each node's CRI socket",
		Long: `Print a node x image table of the local cluster, asking each node's
containerd through its CRI socket. With --wait, wait until every node holds
every image (exit 1 when the time is up) and print how long that took.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			entries, err := config.ParseImages(images)
			if err != nil {
				return err
			}
			e, err := localcluster.Load(clusterDir)
			if err != nil {
				return err
			}
			start := time.Now()
			for {
				held, err := e.NodeImages(cmd.Context())
				if err != nil {
					return err
				}
				table, complete := cacheTable(e.Nodes, held, entries)
				if complete || wait == 0 || time.Since(start) > wait {
					fmt.Fprint(cmd.OutOrStdout(), table)
					if wait > 0 {
						if !complete {
							return fmt.Errorf("not every node holds every image after %v", wait)
						}
						fmt.Fprintf(cmd.OutOrStdout(), "every node holds every image, %v after the wait began\n", time.Since(start).Round(100*time.Millisecond))
					}
					return nil
				}
				time.Sleep(250 * time.Millisecond)
			}
		},
	}
	cmd.Flags().StringVar(&clusterDir, "cluster-dir", localcluster.DefaultDir, "the local cluster's directory")
	cmd.Flags().StringVar(&images, "images", "", "an IMAGES value")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for every node to hold every image")
	_ = cmd.MarkFlagRequired("images")
	return cmd
}

func cacheTable(nodes []string, held map[string]map[string]bool, images []config.Image) (string, bool) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "NODE")
	for _, img := range images {
		fmt.Fprint(tw, "\t"+img.Name)
	}
	fmt.Fprintln(tw)
	complete := true
	for _, node := range nodes {
		fmt.Fprint(tw, node)
		for _, img := range images {
			mark := "cached"
			if !cri.Has(held[node], img.Ref) {
				mark, complete = "-", false
			}
			fmt.Fprint(tw, "\t"+mark)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	return b.String(), complete
}
