package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/template"
)

func processCmd() *cobra.Command {
	var file string
	var params []string
	cmd := &cobra.Command{
		Use:   "process -f TEMPLATE [-p NAME=VALUE ...]",
		Short: "Process an OpenShift Template as `oc process` does, for machines without oc",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			values := map[string]string{}
			for _, p := range params {
				k, v, ok := strings.Cut(p, "=")
				if !ok {
					return fmt.Errorf("-p %q: want NAME=VALUE", p)
				}
				values[k] = v
			}
			out, err := template.Render(data, values)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the Template")
	cmd.Flags().StringArrayVarP(&params, "param", "p", nil, "NAME=VALUE; repeatable")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}
