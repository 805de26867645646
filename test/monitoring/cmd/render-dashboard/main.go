// Command render-dashboard draws deploy/monitoring's Grafana dashboard, as
// one PNG, from a folder of scrapes of the controller's metrics (the e2e
// run writes one), and prints each panel's series and points.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/test/monitoring/render"
)

func main() {
	var dashboard, scrapes, out, subtitle string
	var step time.Duration
	cmd := &cobra.Command{
		Use:           "render-dashboard --scrapes DIR --out FILE.png",
		Short:         "Draw the Grafana dashboard from scraped metrics, with Prometheus's TSDB and PromQL engine",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := render.LoadDashboard(dashboard)
			if err != nil {
				return err
			}
			s, err := render.ReadScrapes(scrapes)
			if err != nil {
				return err
			}
			results, err := render.Evaluate(context.Background(), d, s, step)
			if err != nil {
				return err
			}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			if err := render.Draw(f, d, results, subtitle); err != nil {
				_ = f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			for _, r := range results {
				fmt.Fprintf(cmd.OutOrStdout(), "PANEL | %s | %d series | %d points\n", r.Panel.Title, len(r.Series), r.Points())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d scrapes over %s drawn to %s\n", len(s), s[len(s)-1].At.Sub(s[0].At).Round(time.Second), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&dashboard, "dashboard", "../../deploy/monitoring/grafana-dashboard.json", "the Grafana dashboard's JSON")
	cmd.Flags().StringVar(&scrapes, "scrapes", "", "a folder of scrapes: <unix ms>.prom files, each starting with a \"# target name=value ...\" line")
	cmd.Flags().StringVar(&out, "out", "dashboard.png", "the PNG to write")
	cmd.Flags().StringVar(&subtitle, "subtitle", "", "a line under the title: where the data came from")
	cmd.Flags().DurationVar(&step, "step", 5*time.Second, "the queries' resolution")
	_ = cmd.MarkFlagRequired("scrapes")
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "render-dashboard:", err)
		os.Exit(1)
	}
}
