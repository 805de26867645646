package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/dev/cri"
)

func criCmd() *cobra.Command {
	var socket string
	var parallel int
	cmd := &cobra.Command{Use: "cri", Short: "Talk to a node's runtime through its CRI socket"}
	cmd.PersistentFlags().StringVar(&socket, "socket", "", "CRI socket path")
	dial := func() (*cri.Client, error) {
		if socket == "" {
			return nil, fmt.Errorf("--socket is required")
		}
		return cri.Dial(socket)
	}
	images := &cobra.Command{
		Use:   "images",
		Short: "List the image references the runtime holds",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			refs, err := c.ImageRefs(cmd.Context())
			if err != nil {
				return err
			}
			var list []string
			for r := range refs {
				list = append(list, r)
			}
			sort.Strings(list)
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(list, "\n"))
			return nil
		},
	}
	pull := &cobra.Command{
		Use:   "pull IMAGE...",
		Short: "Pull images straight through the CRI and print how long each took",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			start := time.Now()
			for _, r := range c.Pull(cmd.Context(), args, parallel) {
				if r.Err != nil {
					return fmt.Errorf("%s: %w", r.Ref, r.Err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%v\n", r.Ref, r.Duration.Round(time.Millisecond))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "total\t%v\n", time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	pull.Flags().IntVar(&parallel, "parallel", 1, "pulls in flight")
	teardown := &cobra.Command{
		Use:   "teardown",
		Short: "Stop and remove every pod sandbox (network namespaces and mounts included)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			n, err := c.StopAllPods(ctx)
			fmt.Fprintf(cmd.OutOrStdout(), "%d pods removed\n", n)
			return err
		},
	}
	cmd.AddCommand(images, pull, teardown)
	return cmd
}
