package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	agentreport "github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/registry"
	"github.com/kip-image-puller/kip/internal/version"
)

// printConfigError lists every problem of an invalid configuration and turns
// it into exit status 1; other errors pass through.
func printConfigError(cmd *cobra.Command, err error) error {
	var cfgErr *config.Error
	if !errors.As(err, &cfgErr) {
		return err
	}
	w := cmd.ErrOrStderr()
	fmt.Fprintf(w, "invalid configuration: %d problem(s)\n", len(cfgErr.Problems))
	for _, p := range cfgErr.Problems {
		fmt.Fprintln(w, "  "+p.String())
	}
	return exitError{code: 1}
}

func newValidateCommand() *cobra.Command {
	var mf manifestFlags
	cmd := &cobra.Command{
		Use:   "validate -f configmap.yaml",
		Short: "Check a puller ConfigMap offline",
		Long: `Check a puller ConfigMap offline. Exits 0 with a one-line summary when it
is valid, and 1 listing every problem (key, value, what is expected) when not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, warnings, err := mf.load(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return printConfigError(cmd, err)
			}
			if len(cfg.Skipped) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "invalid: %d IMAGES entries would be left out (the controller caches the other %d images)\n",
					len(cfg.Skipped), len(cfg.Images))
				return exitError{code: 1}
			}
			if err := daemonset.CheckSize(daemonset.Build(cfg, daemonset.Options{KIPImage: version.Image()})); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "invalid:", err)
				return exitError{code: 1}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "valid: %d images, DaemonSet %s/%s, refresh every %dh, %d warning(s)\n",
				len(cfg.Images), cfg.Namespace, cfg.DaemonSetName, cfg.CachingIntervalHours, len(warnings))
			return nil
		},
	}
	mf.bind(cmd)
	return cmd
}

func newRenderCommand() *cobra.Command {
	var mf manifestFlags
	var kipImage string
	var openShift bool
	cmd := &cobra.Command{
		Use:   "render -f configmap.yaml",
		Short: "Print the DaemonSet the controller would apply for a ConfigMap",
		Long: `Print the DaemonSet the controller would apply for a ConfigMap, as YAML.
In the cluster the controller adds the owner reference to its Deployment and
the digests recorded by refreshes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := mf.load(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return printConfigError(cmd, err)
			}
			ds := daemonset.Build(cfg, daemonset.Options{KIPImage: kipImage, OpenShift: openShift})
			out, err := daemonset.YAML(ds)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	mf.bind(cmd)
	cmd.Flags().StringVar(&kipImage, "kip-image", version.Image(), "init container image when KIP_IMAGE is not set")
	cmd.Flags().BoolVar(&openShift, "openshift", false, "render for OpenShift (the UID is left to the SCC)")
	return cmd
}

func newPlanCommand() *cobra.Command {
	var mf manifestFlags
	var nodes int
	var sizes bool
	cmd := &cobra.Command{
		Use:   "plan -f configmap.yaml --nodes N [--sizes]",
		Short: "Print what the cache claims on N nodes",
		Long: `Print the CPU and memory the cache claims, by the documented rule:
(amount per image) x (number of images) x (number of nodes).

With --sizes, also the disk: each image's compressed size, read from its
registry's manifest for each platform it offers, and an estimate of what it
takes on a node (the runtime keeps the compressed layers and unpacks them:
about 3x), per node and over the cluster.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 {
				return fmt.Errorf("--nodes: value %d: expected a number of nodes of at least 1", nodes)
			}
			cfg, _, err := mf.load(cmd.InOrStdin(), cmd.ErrOrStderr())
			if err != nil {
				return printConfigError(cmd, err)
			}
			node, cluster := cfg.Cost(1), cfg.Cost(nodes)
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintf(w, "%d images on %d nodes\n", len(cfg.Images), nodes)
			fmt.Fprintln(w, "RESOURCE\tPER IMAGE\tPER NODE\tCLUSTER")
			row := func(label string, per resource.Quantity, n, c resource.Quantity) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", label, per.String(), n.String(), c.String())
			}
			row("memory limit", cfg.MemoryLimit, node.MemoryLimit, cluster.MemoryLimit)
			row("memory request", cfg.MemoryRequest, node.MemoryRequest, cluster.MemoryRequest)
			row("cpu limit", cfg.CPULimit, node.CPULimit, cluster.CPULimit)
			row("cpu request", cfg.CPURequest, node.CPURequest, cluster.CPURequest)
			if err := w.Flush(); err != nil {
				return err
			}
			if !sizes {
				return nil
			}
			refs := make([]string, 0, len(cfg.Images))
			for _, img := range cfg.Images {
				refs = append(refs, img.Ref)
			}
			found := registry.Default.Sizes(cmd.Context(), refs, authn.DefaultKeychain)
			writeDisk(cmd.OutOrStdout(), cfg.Images, found, nodes)
			return nil
		},
	}
	mf.bind(cmd)
	cmd.Flags().IntVar(&nodes, "nodes", 0, "number of nodes the images are cached on")
	cmd.Flags().BoolVar(&sizes, "sizes", false, "also read each image's manifest from its registry (credentials of ~/.docker/config.json) and print the disk a node needs, per platform")
	_ = cmd.MarkFlagRequired("nodes")
	return cmd
}

// writeDisk prints, per platform, the compressed bytes of the images and
// the estimate of what they take on a node, per node and on nodes nodes;
// then the images whose size could not be read, and those a platform lacks.
func writeDisk(out io.Writer, images []config.Image, found map[string]registry.SizesResult, nodes int) {
	compressed := map[string]int64{}
	has := map[string]int{}
	var failed []string
	for _, img := range images {
		res := found[img.Ref]
		if res.Err != nil {
			failed = append(failed, fmt.Sprintf("%s (%s): %v", img.Name, img.Ref, res.Err))
			continue
		}
		for _, s := range res.Sizes {
			compressed[s.Platform] += s.Bytes
			has[s.Platform]++
		}
	}
	platforms := slices.Sorted(maps.Keys(compressed))
	w := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintf(w, "\nDISK, per platform (on a node: about %dx the compressed size)\n", registry.UnpackFactor)
	fmt.Fprintln(w, "PLATFORM\tIMAGES\tCOMPRESSED\tPER NODE\tCLUSTER")
	for _, p := range platforms {
		est := compressed[p] * registry.UnpackFactor
		fmt.Fprintf(w, "%s\t%d/%d\t%s\t%s\t%s\n", p, has[p], len(images), agentreport.Bytes(compressed[p]), agentreport.Bytes(est), agentreport.Bytes(est*int64(nodes)))
	}
	_ = w.Flush()
	for _, f := range failed {
		fmt.Fprintln(out, "size unknown: "+f)
	}
}
