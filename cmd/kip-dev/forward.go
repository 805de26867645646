package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/dev/netns"
)

func forwardCmd() *cobra.Command {
	var nsPath string
	cmd := &cobra.Command{
		Use:   "forward --netns PATH LISTEN=TARGET...",
		Short: "Forward TCP from this host's loopback into a network namespace until SIGTERM",
		Long: `Forward TCP connections from a loopback address of this host to an address
inside a network namespace (the local cluster's), for example
127.0.0.1:16443=10.88.255.1:443 for the API server.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var forwards []netns.Forward
			for _, a := range args {
				f, err := netns.ParseForward(a)
				if err != nil {
					return err
				}
				forwards = append(forwards, f)
			}
			d, err := netns.NewDialer(nsPath)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			fmt.Fprintf(cmd.OutOrStdout(), "forwarding %s into %s\n", strings.Join(args, ", "), nsPath)
			return netns.Serve(ctx, d, forwards, func(format string, a ...any) {
				fmt.Fprintf(os.Stderr, "forward: "+format+"\n", a...)
			})
		},
	}
	cmd.Flags().StringVar(&nsPath, "netns", "", "the network namespace, e.g. /run/netns/kip-cluster")
	_ = cmd.MarkFlagRequired("netns")
	return cmd
}
