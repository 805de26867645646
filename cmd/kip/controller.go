package main

import (
	"fmt"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/controller/puller"
	"github.com/kip-image-puller/kip/internal/privilege"
	"github.com/kip-image-puller/kip/internal/version"
)

type controllerFlags struct {
	managerFlags
	namespace        string
	configMap        string
	deploymentName   string
	pullSecretDir    string
	kipImage         string
	openShift        string
	leaderElectionID string
	podName          string
	allowedSockets   []string
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
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the controller that keeps the image-caching DaemonSet in line with its ConfigMap",
		Long: `Run the controller that keeps the image-caching DaemonSet in line with its
ConfigMap. It reads the ConfigMap through the API, live (changes apply
within seconds, no restart); while the ConfigMap does not exist the last
applied DaemonSet stays. It restores the DaemonSet when it is deleted or
edited by hand, and never deletes it on start-up or shutdown.

In a cluster it finds its namespace in POD_NAMESPACE (downward API) or
NAMESPACE, its ConfigMap in CONFIGMAP_NAME and its own Deployment in
DEPLOYMENT_NAME, all set explicitly by the install; outside, pass
--kubeconfig and --namespace. With --configmap "" the configuration is the
process environment.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.setLogger()
			return runController(cmd, f)
		},
	}
	fl := cmd.Flags()
	f.bind(fl)
	fl.StringVarP(&f.namespace, "namespace", "n", envOr(config.Defaults[config.KeyNamespace], "POD_NAMESPACE", config.KeyNamespace), "namespace of the ConfigMap, the puller Deployment and the DaemonSet")
	fl.StringVar(&f.configMap, "configmap", envOr(config.DefaultConfigMapName, "CONFIGMAP_NAME"), "ConfigMap to watch; empty: use the environment only")
	fl.StringVar(&f.deploymentName, "deployment-name", envOr(config.Defaults[config.KeyDeploymentName], config.KeyDeploymentName), "the controller's own Deployment, which owns the DaemonSet")
	fl.StringVar(&f.pullSecretDir, "pull-secret-dir", "", "read the IMAGE_PULL_SECRETS from DIR/NAME (mounted Secrets) instead of the API; the operator sets it")
	fl.StringVar(&f.kipImage, "kip-image", version.Image(), "init container image when KIP_IMAGE is not set and the puller's Deployment is not found")
	fl.StringVar(&f.openShift, "openshift", "auto", "auto (detect the route.openshift.io API group), true or false")
	fl.StringVar(&f.leaderElectionID, "leader-election-id", "", "name of the leader election Lease (default kip-<configmap>)")
	fl.StringVar(&f.podName, "pod-name", os.Getenv("POD_NAME"), "the controller's own Pod (env POD_NAME, downward API): agent mode's agents run its image, by digest; empty (outside a cluster): --kip-image")
	fl.StringSliceVar(&f.allowedSockets, "cri-socket-allow", nil, "runtime sockets agent mode may mount beyond the known ones (containerd, k3s, CRI-O, cri-dockerd), set by whoever installs the controller, never by its configuration; a path with a $(NODE_NAME) folder allows that folder, which must hold nothing but runtime sockets; SOCKET=STORE also names the runtime's image store, mounted read-only into the agents to measure its filesystem (PIN_BUDGET, IMAGEFS_FREE_FLOOR)")
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
	mgr, err := puller.NewManager(rc, f.options(id, f.namespace), puller.Options{
		PodName:         f.podName,
		AllowedSockets:  checkedSockets(log, f.allowedSockets),
		Namespace:       f.namespace,
		ConfigMapName:   f.configMap,
		DeploymentName:  f.deploymentName,
		PullSecretDir:   f.pullSecretDir,
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

// checkedSockets is --cri-socket-allow, or nothing when a value is not a
// socket path (privilege.CheckExtraSockets). Not fatal: a process that
// exits restarts for ever; agent mode with such a socket is refused, and
// the refusal names the flag.
func checkedSockets(log logr.Logger, sockets []string) []string {
	if err := privilege.CheckExtraSockets(sockets); err != nil {
		log.Error(err, "ignoring --cri-socket-allow")
		return nil
	}
	return sockets
}
