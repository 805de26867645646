package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/puller"
	"github.com/kip-image-puller/kip/internal/version"
	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

type controllerFlags struct {
	kubeconfig       string
	namespace        string
	configMap        string
	kipImage         string
	openShift        string
	leaderElect      bool
	leaderElectionID string
	metricsAddr      string
	probeAddr        string
}

// envOr returns the first non-empty environment variable of names, or def.
func envOr(def string, names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return def
}

func newControllerCommand() *cobra.Command {
	f := controllerFlags{}
	// Stack traces only for panics: an error log line is an operational
	// report (an unreachable registry, say), not a bug.
	zapOpts := zap.Options{StacktraceLevel: zapcore.PanicLevel}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the controller that keeps the image-caching DaemonSet in line with its ConfigMap",
		Long: `Run the controller that keeps the image-caching DaemonSet in line with its
ConfigMap. It reads the ConfigMap live (changes apply within seconds, no
restart), falls back to the configuration in its environment while the
ConfigMap does not exist, restores the DaemonSet when it is deleted or edited
by hand, and never deletes it on start-up or shutdown.

In a cluster it finds its namespace in POD_NAMESPACE (downward API) or
NAMESPACE; outside, pass --kubeconfig and --namespace.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
			return runController(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; default: in-cluster, then $KUBECONFIG, then ~/.kube/config")
	fl.StringVarP(&f.namespace, "namespace", "n", envOr(config.Defaults[config.KeyNamespace], "POD_NAMESPACE", config.KeyNamespace), "namespace of the ConfigMap, the puller Deployment and the DaemonSet")
	fl.StringVar(&f.configMap, "configmap", envOr(config.DefaultConfigMapName, "CONFIGMAP_NAME"), "ConfigMap to watch; empty: use the environment only")
	fl.StringVar(&f.kipImage, "kip-image", version.Image(), "init container image when KIP_IMAGE is not set and the puller's Deployment is not found")
	fl.StringVar(&f.openShift, "openshift", "auto", "auto (detect the route.openshift.io API group), true or false")
	fl.BoolVar(&f.leaderElect, "leader-elect", true, "elect a leader, so that several replicas are safe")
	fl.StringVar(&f.leaderElectionID, "leader-election-id", "", "name of the leader election Lease (default kip-<configmap>)")
	fl.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 disables it")
	fl.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz; 0 disables them")
	goFlags := flag.NewFlagSet("zap", flag.ContinueOnError)
	zapOpts.BindFlags(goFlags)
	fl.AddGoFlagSet(goFlags)
	return cmd
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}

func runController(cmd *cobra.Command, f controllerFlags) error {
	log := ctrl.Log.WithName("setup")
	rc, err := restConfig(f.kubeconfig)
	if err != nil {
		return fmt.Errorf("--kubeconfig: %w", err)
	}
	var openShift bool
	switch f.openShift {
	case "true":
		openShift = true
	case "false":
	case "auto":
		if openShift, err = puller.IsOpenShift(rc); err != nil {
			return fmt.Errorf("detect OpenShift: %w", err)
		}
	default:
		return fmt.Errorf("--openshift: value %q: expected auto, true or false", f.openShift)
	}
	id := f.leaderElectionID
	if id == "" {
		id = "kip-" + f.configMap
		if f.configMap == "" {
			id = "kip-environment"
		}
	}
	renew := 10 * time.Second
	mgr, err := puller.NewManager(rc, ctrl.Options{
		LeaderElection:                f.leaderElect,
		LeaderElectionID:              id,
		LeaderElectionNamespace:       f.namespace,
		LeaderElectionReleaseOnCancel: true,
		RenewDeadline:                 &renew,
		HealthProbeBindAddress:        f.probeAddr,
		Metrics:                       metricsserver.Options{BindAddress: f.metricsAddr},
	}, puller.Options{
		Namespace:       f.namespace,
		ConfigMapName:   f.configMap,
		Env:             config.FromEnviron(os.Environ()),
		DefaultKIPImage: f.kipImage,
		OpenShift:       openShift,
	})
	if err != nil {
		return err
	}
	log.Info("starting", "version", version.Version, "namespace", f.namespace, "configmap", f.configMap, "openshift", openShift, "leaderElection", f.leaderElect)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return err
	}
	log.Info("stopped; the DaemonSet stays in place")
	return nil
}
