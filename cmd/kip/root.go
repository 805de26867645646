package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/manifest"
	"github.com/kip-image-puller/kip/internal/version"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "kip",
		Short: "Kubernetes image puller: keep workspace images cached on every node",
		Long: `kip keeps a chosen list of images cached on every selected node of a
Kubernetes cluster, so that pods using them start without pulling.

It runs as a controller (kip controller) that keeps a DaemonSet of
image-holding containers in line with its ConfigMap (or, in agent mode, a
DaemonSet of agents, kip agent, that pull through each node's runtime), and
offers offline helpers to check and preview that ConfigMap.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newControllerCommand(), newOperatorCommand(), newStatusCommand(), newImagesCommand(), newAgentCommand(), newValidateCommand(), newRenderCommand(), newPlanCommand(), newVersionCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "kip %s (commit %s, image %s)\n", version.Version, version.Commit, version.Image())
			return nil
		},
	}
}

// manifestFlags are the flags of the commands that read a ConfigMap manifest.
type manifestFlags struct {
	file string
	name string
}

func (f *manifestFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "filename", "f", "", "ConfigMap manifest (YAML or JSON; - for standard input)")
	cmd.Flags().StringVar(&f.name, "name", "", "name of the ConfigMap, when the manifest holds several")
	_ = cmd.MarkFlagRequired("filename")
}

// load reads the manifest and parses its ConfigMap. A configuration error is
// returned as *config.Error, after any warnings were written to errOut.
func (f *manifestFlags) load(in io.Reader, errOut io.Writer) (*config.Config, []config.Problem, error) {
	var data []byte
	var err error
	if f.file == "-" {
		data, err = io.ReadAll(in)
	} else {
		data, err = os.ReadFile(f.file)
	}
	if err != nil {
		return nil, nil, err
	}
	cm, manifestWarnings, err := manifest.ConfigMap(data, f.name)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", f.file, err)
	}
	for _, w := range manifestWarnings {
		fmt.Fprintf(errOut, "warning: %s: %s\n", f.file, w)
	}
	cfg, warnings, err := config.Parse(cm.Data)
	for _, w := range warnings {
		fmt.Fprintln(errOut, "warning:", w)
	}
	if cfg != nil {
		for _, p := range cfg.Skipped {
			fmt.Fprintln(errOut, "invalid entry, left out:", p)
		}
	}
	return cfg, warnings, err
}
