package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kip-image-puller/kip/internal/images"
	"github.com/kip-image-puller/kip/internal/manager"
	"github.com/kip-image-puller/kip/internal/operator"
	"github.com/kip-image-puller/kip/internal/privilege"
	"github.com/kip-image-puller/kip/internal/version"
)

type operatorFlags struct {
	managerFlags
	namespaces        string
	pullerImage       string
	allowedSockets    []string
	defaultImageLists []string
	fetchTimeout      time.Duration
	dashboardURL      string
	retryAfter        time.Duration
	leaderElectionNS  string
	bridge            string
	selfDeployment    string
	// defaultImagesRefresh is how often default images are read again.
	defaultImagesRefresh time.Duration
}

func newOperatorCommand() *cobra.Command {
	f := operatorFlags{}
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Run the operator for KubernetesImagePuller resources and the CheCluster switch",
		Long: `Run the operator. For each KubernetesImagePuller (che.eclipse.org/v1alpha1)
it applies the puller's ServiceAccount, Role, RoleBinding, ConfigMap and
Deployment, all owned by the resource, and keeps the resource's status true to
what the nodes hold: Ready only when every image is cached on every selected
node. One resource per namespace runs; the others get Ready=False, reason
Conflict. When CheClusters (org.eclipse.che/v2) exist, one with
spec.components.imagePuller.enable: true gets a <name>-image-puller resource,
filled with the platform's default images when spec.images is empty, unless
che-operator reconciles that CheCluster and writes the resource itself
(--checluster-bridge). A resource another manager keeps (its managed-by
label, its controller, or another field manager writing it) is reconciled
and never rewritten.

WATCH_NAMESPACE (or --namespaces) limits it to a comma-separated list of
namespaces; empty means all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.setLogger()
			return runOperator(f)
		},
	}
	fl := cmd.Flags()
	f.bind(fl)
	fl.StringVar(&f.namespaces, "namespaces", envOr("", "WATCH_NAMESPACE"), "comma-separated namespaces to watch; empty: all")
	fl.StringSliceVar(&f.allowedSockets, "cri-socket-allow", splitList(os.Getenv("KIP_CRI_SOCKET_ALLOW")), "runtime sockets agent mode may mount beyond the known ones, passed on to every puller (env KIP_CRI_SOCKET_ALLOW, comma-separated): the installer's setting, never a resource's")
	fl.StringVar(&f.pullerImage, "puller-image", envOr("", "KIP_PULLER_IMAGE"), "image of the pullers whose resource sets no imagePullerImage (default: the operator's own, found through POD_NAME, else "+version.Image()+")")
	fl.StringArrayVar(&f.defaultImageLists, "default-images-from", nil, "an image list to use instead of a CheCluster's dashboard and registries: a dashboard API URL (…/dashboard/api) or an external_images.txt URL; repeatable")
	fl.DurationVar(&f.fetchTimeout, "fetch-timeout", 30*time.Second, "time limit for reading a CheCluster's default images, every list together")
	fl.StringVar(&f.dashboardURL, "dashboard-url", "", "the dashboard API every CheCluster's default images are read from, such as https://che.example.com/dashboard/api (default: the in-cluster Service, http://<che|devspaces>-dashboard.<namespace>.svc:8080/dashboard/api, which serves HTTP only); samples and registry lists are read only on its origin; SSL_CERT_FILE adds a CA")
	fl.DurationVar(&f.defaultImagesRefresh, "default-images-refresh", time.Hour, "how often a CheCluster's default images are read again (asked conditionally, with ETag or Last-Modified where the server gives one), besides on each CheCluster change")
	fl.DurationVar(&f.retryAfter, "retry-after", time.Minute, "wait before reading an unreachable registry again")
	fl.StringVar(&f.bridge, "checluster-bridge", operator.BridgeAuto, "write a KubernetesImagePuller for a CheCluster that enables the image puller: auto (unless che-operator reconciles that CheCluster; it writes the resource itself), on, or off. Either way a resource another manager keeps is never rewritten")
	fl.StringVar(&f.selfDeployment, "operator-deployment", "kip-operator", "the operator's own Deployment, in POD_NAMESPACE: Events say there when a controller starts or stops with its API")
	fl.StringVar(&f.leaderElectionNS, "leader-election-namespace", envOr("", "POD_NAMESPACE"), "namespace of the leader election Lease (default: the pod's own)")
	return cmd
}

func runOperator(f operatorFlags) error {
	log := ctrl.Log.WithName("setup")
	rc, err := restConfig(f.kubeconfig)
	if err != nil {
		return fmt.Errorf("--kubeconfig: %w", err)
	}
	f.allowedSockets = checkedSockets(log, f.allowedSockets)
	if f.pullerImage == "" {
		if f.pullerImage, err = ownImage(rc); err != nil {
			return err
		}
	}
	switch f.bridge {
	case operator.BridgeAuto, operator.BridgeOn, operator.BridgeOff:
	default:
		return fmt.Errorf("--checluster-bridge: value %q: expected auto, on or off", f.bridge)
	}
	if f.dashboardURL != "" {
		if u, err := url.Parse(f.dashboardURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !images.IsDashboard(f.dashboardURL) {
			return fmt.Errorf("--dashboard-url: value %q: expected an http(s) URL ending in %s", f.dashboardURL, images.DashboardSuffix)
		}
	}
	namespaces := splitList(f.namespaces) // one, several, or empty for all
	var self *types.NamespacedName
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" && f.selfDeployment != "" {
		self = &types.NamespacedName{Namespace: ns, Name: f.selfDeployment}
	}
	mgr, err := manager.NewOperator(rc, f.options("kip-operator", f.leaderElectionNS), manager.Options{
		Namespaces:           namespaces,
		PullerImage:          f.pullerImage,
		AllowedSockets:       f.allowedSockets,
		DefaultImageLists:    f.defaultImageLists,
		FetchTimeout:         f.fetchTimeout,
		DashboardURL:         f.dashboardURL,
		RetryAfter:           f.retryAfter,
		CheClusterBridge:     f.bridge,
		DefaultImagesRefresh: f.defaultImagesRefresh,
		Self:                 self,
	})
	if err != nil {
		return err
	}
	log.Info("starting the operator", "version", version.Version, "namespaces", namespaces, "pullerImage", f.pullerImage, "leaderElection", f.leaderElect)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// ownImage is the image the operator's pod runs, by digest where its
// status gives one, so that the pullers run the same build; outside a pod
// (no POD_NAME), the release image.
func ownImage(rc *rest.Config) (string, error) {
	name, ns := os.Getenv("POD_NAME"), os.Getenv("POD_NAMESPACE")
	if name == "" || ns == "" {
		return version.Image(), nil
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("find the operator's own image from pod %s/%s (set KIP_PULLER_IMAGE to skip): %w", ns, name, err)
	}
	c := pod.Spec.Containers[0]
	for _, each := range pod.Spec.Containers {
		if each.Name == "operator" {
			c = each
		}
	}
	// By digest where the runtime says which: the pullers, and their
	// agents, run the very build the operator runs, whatever a tag
	// points to later.
	for _, st := range pod.Status.ContainerStatuses {
		if st.Name != c.Name {
			continue
		}
		if byDigest, err := privilege.ImageByDigest(c.Image, st.ImageID); err == nil {
			return byDigest, nil
		}
	}
	return c.Image, nil
}

// splitList splits a comma-separated list (WATCH_NAMESPACE,
// KIP_CRI_SOCKET_ALLOW), dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
