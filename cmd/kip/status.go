package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	agentreport "github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/observe"
	"github.com/kip-image-puller/kip/internal/status"
)

// Exit codes of kip status --wait.
const (
	exitWaitTimedOut = 1 // not every image cached in time; the failures are listed
	exitStatusError  = 2 // the status could not be read
)

// transposeAbove is the number of images above which the table has a row per
// image instead of a column.
const transposeAbove = 6

type statusFlags struct {
	kubeconfig, namespace, configMap, output string
	cpuProfile                               string
	watch, wait                              bool
	timeout, interval                        time.Duration
}

func newStatusCommand() *cobra.Command {
	f := statusFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show which image is cached on which node",
		Long: `Show, for every node and every configured image, whether the image is
cached there: Cached, Pulling, Failed (with the kubelet's reason and the
runtime's message), Pending or NotSelected, and a one-line summary.

Exit status: 0 on success; with --wait, 0 once every selected node holds
every image, 1 when --timeout passes first (the failures are listed);
2 when the status cannot be read (no cluster access, no DaemonSet).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; default: in-cluster, then $KUBECONFIG, then ~/.kube/config")
	fl.StringVarP(&f.namespace, "namespace", "n", config.Defaults[config.KeyNamespace], "namespace of the puller")
	fl.StringVar(&f.configMap, "configmap", config.DefaultConfigMapName, "the puller's ConfigMap (it names the DaemonSet)")
	fl.StringVarP(&f.output, "output", "o", "table", "table, json or yaml")
	fl.BoolVarP(&f.watch, "watch", "w", false, "redraw as the nodes report progress")
	fl.BoolVar(&f.wait, "wait", false, "wait until every selected node holds every image")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Minute, "how long --wait waits")
	fl.DurationVar(&f.interval, "interval", 2*time.Second, "how often --watch and --wait look again")
	fl.StringVar(&f.cpuProfile, "cpu-profile", "", "write a CPU profile of this run to the file (go tool pprof reads it): where the time of a slow status goes")
	return cmd
}

func runStatus(cmd *cobra.Command, f statusFlags) error {
	if f.output != "table" && f.output != "json" && f.output != "yaml" {
		return fmt.Errorf("--output: value %q: expected table, json or yaml", f.output)
	}
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		defer stop()
	}
	rc, err := restConfig(f.kubeconfig)
	if err != nil {
		return statusError(cmd, fmt.Errorf("--kubeconfig: %w", err))
	}
	c, err := client.New(rc, client.Options{})
	if err != nil {
		return statusError(cmd, err)
	}
	ctx := cmd.Context()
	var deadline time.Time
	if f.wait {
		deadline = time.Now().Add(f.timeout)
	}
	last := ""
	for {
		r, err := readStatus(ctx, c, f.namespace, f.configMap)
		if err != nil {
			return statusError(cmd, err)
		}
		out, err := renderStatus(r, f.output)
		if err != nil {
			return err
		}
		done := !f.watch && !f.wait
		if f.wait && r.Summary.Complete() {
			done = true
		}
		if f.wait && !done && time.Now().After(deadline) {
			fmt.Fprint(cmd.OutOrStdout(), out)
			fmt.Fprintf(cmd.ErrOrStderr(), "not every image is cached after %v: %s\n", f.timeout, r.Line())
			return exitError{code: exitWaitTimedOut}
		}
		// --wait alone prints only the outcome; --watch redraws on every change.
		if done || (f.watch && out != last) {
			if f.watch && f.output == "table" && last != "" {
				if isTerminal(cmd.OutOrStdout()) {
					fmt.Fprint(cmd.OutOrStdout(), "\033[H\033[2J") // redraw in place
				} else {
					fmt.Fprint(cmd.OutOrStdout(), "\n")
				}
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			last = out
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(f.interval):
		}
	}
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// isTerminal tells whether w is a terminal, where --watch redraws in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func statusError(cmd *cobra.Command, err error) error {
	fmt.Fprintln(cmd.ErrOrStderr(), "Error:", err)
	return exitError{code: exitStatusError}
}

// readStatus reads what the nodes report about the puller's DaemonSet, which
// its ConfigMap names.
func readStatus(ctx context.Context, c client.Client, namespace, configMap string) (status.Report, error) {
	var cm corev1.ConfigMap
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: configMap}, &cm); err != nil && !apierrors.IsNotFound(err) {
		return status.Report{}, err
	}
	dsName := config.ActiveDaemonSet(cm.Data)
	r, found, err := observe.Source{Reader: c, Events: c}.Read(ctx, namespace, dsName)
	if err == nil && !found {
		err = fmt.Errorf("DaemonSet %s/%s: not found (is the puller installed in namespace %s?)", namespace, dsName, namespace)
	}
	if cfg, _, parseErr := config.Parse(cm.Data); parseErr == nil {
		for _, p := range cfg.Skipped {
			r.InvalidEntries = append(r.InvalidEntries, p.String())
		}
	}
	return r, err
}

func renderStatus(r status.Report, output string) (string, error) {
	switch output {
	case "json":
		b, err := json.MarshalIndent(r, "", "  ")
		return string(b) + "\n", err
	case "yaml":
		b, err := yaml.Marshal(r)
		return string(b), err
	}
	var b strings.Builder
	writeTable(&b, r)
	writeAgents(&b, r)
	writeKubeletBytes(&b, r)
	fmt.Fprintln(&b, r.Line())
	for _, e := range r.InvalidEntries {
		fmt.Fprintln(&b, "invalid entry, left out:", e)
	}
	if ws := r.Summary.WarmSince; ws != nil {
		fmt.Fprintf(&b, "every selected node holds every image since %s\n", ws.Format(time.RFC3339))
	}
	return b.String(), nil
}

// writeAgents writes, in agent mode, a line per node whose agent reported:
// its runtime, its heals, its disk (the configured images' bytes cached and
// pinned, the pin budget, the image filesystem's free space), and whether
// its cached images are pinned (and, when not, why and how the runtime
// pins); then the pull secrets each agent left out.
func writeAgents(w io.Writer, r status.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var secrets []string
	header := false
	for _, n := range r.Nodes {
		a := n.Agent
		if a == nil {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "AGENT ON\tRUNTIME\tHEALS\tDISK\tPINNED")
			header = true
		}
		pinned := "yes"
		if a.Pinning != "" {
			pinned = "no: " + a.Pinning
		}
		disk := "-"
		if a.Disk != nil {
			disk = a.Disk.Summary()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", n.Name, a.Runtime, a.Heals, disk, pinned)
		for _, p := range a.SecretProblems {
			secrets = append(secrets, fmt.Sprintf("%s: pull secret left out: %s", n.Name, p))
		}
	}
	_ = tw.Flush()
	for _, line := range secrets {
		fmt.Fprintln(w, line)
	}
}

// writeKubeletBytes writes, in daemonset mode, what the configured images
// take on each node, as its kubelet lists them; nothing when no node says.
func writeKubeletBytes(w io.Writer, r status.Report) {
	var lines []string
	for _, n := range r.Nodes {
		if n.KubeletBytes > 0 {
			lines = append(lines, n.Name+"\t"+agentreport.Bytes(n.KubeletBytes))
		}
	}
	if len(lines) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DISK ON\tCACHED (THE KUBELET'S SIZES)")
	for _, l := range lines {
		fmt.Fprintln(tw, l)
	}
	_ = tw.Flush()
}

// writeTable writes nodes as rows and images as columns, or the transpose
// when there are many images.
func writeTable(w io.Writer, r status.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	cell := func(n status.Node, img string) string {
		c := n.Images[img]
		if c.State == status.Failed {
			return "Failed(" + c.Reason + ")"
		}
		return string(c.State)
	}
	nodeLabel := func(n status.Node) string {
		var marks []string
		if !n.Ready {
			marks = append(marks, "NotReady")
		}
		if n.Cordoned {
			marks = append(marks, "Cordoned")
		}
		if n.WarmingTaint {
			marks = append(marks, "Tainted")
		}
		if len(marks) == 0 {
			return n.Name
		}
		return n.Name + " (" + strings.Join(marks, ",") + ")"
	}
	if len(r.Images) > transposeAbove {
		fmt.Fprint(tw, "IMAGE")
		for _, n := range r.Nodes {
			fmt.Fprint(tw, "\t"+nodeLabel(n))
		}
		fmt.Fprintln(tw)
		for _, img := range r.Images {
			fmt.Fprint(tw, img.Name)
			for _, n := range r.Nodes {
				fmt.Fprint(tw, "\t"+cell(n, img.Name))
			}
			fmt.Fprintln(tw)
		}
		return
	}
	fmt.Fprint(tw, "NODE")
	for _, img := range r.Images {
		fmt.Fprint(tw, "\t"+strings.ToUpper(img.Name))
	}
	fmt.Fprintln(tw)
	for _, n := range r.Nodes {
		fmt.Fprint(tw, nodeLabel(n))
		for _, img := range r.Images {
			fmt.Fprint(tw, "\t"+cell(n, img.Name))
		}
		fmt.Fprintln(tw)
	}
}
