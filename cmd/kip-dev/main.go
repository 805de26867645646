// Command kip-dev holds the developer tools of the local test cluster: OCI
// registries on loopback, the project's image built and pushed without a
// container engine, workspace-like sample images, direct CRI access to each
// node's runtime, and a file server to stand in for in-cluster web services.
// It is not part of the product.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{Use: "kip-dev", Short: "Developer tools of the local test cluster", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(registryCmd(), pushImageCmd(), pushPauseCmd(), pushSamplesCmd(), criCmd(), processCmd(), cacheTableCmd(), benchCmd(), benchScaleCmd(), workspaceCmd(), bundleCmd(), forwardCmd(), serveFilesCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kip-dev:", err)
		os.Exit(1)
	}
}
