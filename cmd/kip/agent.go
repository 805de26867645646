package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kip-image-puller/kip/internal/agent"
	agentreport "github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/registry"
)

type agentFlags struct {
	images, digests, daemonSet    string
	socket, hostRoot              string
	parallelism                   int
	attemptTimeout, healInterval  time.Duration
	backoffInitial, backoffMax    time.Duration
	pullSecretDir                 string
	pullSecrets                   []string
	podName, podNamespace, health string
	once                          bool
	maxNodesPulling               int
	pullSlots                     string
	pinBudget, freeFloor, imageFs string
}

func newAgentCommand() *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent --images IMAGES",
		Short: "Pull and hold this node's images through its container runtime (agent mode)",
		Long: `kip agent runs on every node in agent mode. It pulls the images through the
node's container runtime (CRI), at most --parallelism at a time, pins them
where the runtime can (containerd's io.cri-containerd.pinned label), checks
every --heal-interval that the runtime still holds them and pulls again what
disappeared, and reports each image's state on its own Pod (annotation
kip.dev/agent-report) for the controller. The Pod is Ready once every image
is cached.

Outside a Pod (no --pod-name), or with --once, it prints the report instead:
kip agent --once --cri-socket /run/containerd/containerd.sock --images 'a=reg/a:v1'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runAgent(ctx, f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.images, "images", os.Getenv("KIP_IMAGES"), "the images, in the IMAGES format (name=ref;...) (env KIP_IMAGES)")
	fl.StringVar(&f.digests, "digests", os.Getenv("KIP_DIGESTS"), "the digest each tag last resolved to, as a JSON object; a tag held at another digest is pulled again (env KIP_DIGESTS)")
	fl.StringVar(&f.daemonSet, "daemonset", "", "follow the list (annotations "+daemonset.AnnotationImages+" and "+daemonset.AnnotationDigests+") on this DaemonSet in --pod-namespace, instead of --images and --digests")
	fl.StringVar(&f.socket, "cri-socket", os.Getenv("CRI_SOCKET"), "the runtime's CRI socket; empty probes the usual containerd, CRI-O and cri-dockerd paths under --host-root (env CRI_SOCKET)")
	fl.StringVar(&f.hostRoot, "host-root", "/", "where the host's paths are mounted, for probing")
	fl.IntVar(&f.parallelism, "parallelism", 8, "images pulled at once on this node")
	fl.DurationVar(&f.attemptTimeout, "attempt-timeout", 10*time.Minute, "the longest one pull attempt may take")
	fl.DurationVar(&f.backoffInitial, "backoff-initial", 10*time.Second, "the wait after an image's first failed pull; doubled after each next one")
	fl.DurationVar(&f.backoffMax, "backoff-max", 5*time.Minute, "the longest wait between an image's attempts")
	fl.DurationVar(&f.healInterval, "heal-interval", 5*time.Minute, "how often to check that the runtime still holds every image (one ListImages call)")
	fl.StringVar(&f.pullSecretDir, "pull-secret-dir", "", "where the pull secrets are mounted, one folder per Secret")
	fl.StringSliceVar(&f.pullSecrets, "pull-secrets", nil, "the pull secrets to read under --pull-secret-dir")
	fl.StringVar(&f.podName, "pod-name", os.Getenv("POD_NAME"), "this agent's Pod, which carries the report (env POD_NAME)")
	fl.StringVar(&f.podNamespace, "pod-namespace", os.Getenv("POD_NAMESPACE"), "this agent's namespace (env POD_NAMESPACE)")
	fl.StringVar(&f.health, "health-addr", ":8081", "where /readyz (every image cached) and /healthz are served; empty for none")
	fl.IntVar(&f.maxNodesPulling, "max-nodes-pulling", 0, "how many nodes pull at once, through Leases named --pull-slots-N in --pod-namespace; 0: no bound")
	fl.StringVar(&f.pullSlots, "pull-slots", "kip-pull-slot", "the name prefix of the pull slots' Leases")
	fl.StringVar(&f.pinBudget, "pin-budget", "", "the most to pin on this node, a percentage of the image filesystem (60%) or a size (20Gi); images past it, in --images order, are held unpinned and reported OverBudget; empty: no bound")
	fl.StringVar(&f.freeFloor, "imagefs-free-floor", "", "the free space to leave on the image filesystem (20% or 10Gi): no pull that would leave less; empty: no floor")
	fl.StringVar(&f.imageFs, "image-fs", "", "a folder on the runtime's image filesystem, to measure it (statfs); without it, percentages of --pin-budget and --imagefs-free-floor bind nothing")
	fl.BoolVar(&f.once, "once", false, "sync once, print the report and exit: 0 when every image is cached, 1 otherwise")
	return cmd
}

func runAgent(ctx context.Context, f agentFlags, out io.Writer) error {
	log := zap.New(zap.UseDevMode(false)).WithName("agent")
	budget, err := diskFlag("--pin-budget", f.pinBudget, 1)
	if err != nil {
		return err
	}
	floor, err := diskFlag("--imagefs-free-floor", f.freeFloor, 0)
	if err != nil {
		return err
	}
	var list agent.List
	var lists <-chan agent.List
	var cs kubernetes.Interface
	if f.daemonSet != "" {
		if f.images != "" || f.digests != "" || f.once {
			return errors.New("--daemonset: the list comes from the DaemonSet; leave out --images, --digests and --once")
		}
		if f.podNamespace == "" {
			return errors.New("--daemonset: set --pod-namespace, the DaemonSet's namespace")
		}
		cs, err = inCluster()
		if err != nil {
			return fmt.Errorf("--daemonset: %w", err)
		}
		if list, lists, err = followDaemonSet(ctx, cs, f.podNamespace, f.daemonSet, log); err != nil {
			return err
		}
	} else {
		if list.Images, err = config.ParseImages(f.images); err != nil {
			return fmt.Errorf("--images: %w", err)
		}
		if f.digests != "" {
			if err := json.Unmarshal([]byte(f.digests), &list.Digests); err != nil {
				return fmt.Errorf("--digests: a JSON object of image references to digests: %w", err)
			}
		}
	}
	cri, err := connectCRI(ctx, f, log)
	if err != nil {
		return err
	}
	defer func() { _ = cri.Close(context.Background()) }()
	cri.FsPath = f.imageFs
	log.Info("container runtime", "socket", cri.Socket, "runtime", cri.Name, "version", cri.Version)

	var pinner agent.Pinner
	canPin := cri.Name == "containerd"
	if canPin {
		c, err := agent.DialContainerd(cri.Socket)
		if err != nil {
			return err
		}
		defer func() { _ = c.Close() }()
		pinner = c
	}
	// The kubelet rewrites a mounted Secret within a minute or two of its
	// change; a rotation is logged, and reported, within secretCheck after.
	const secretCheck = 30 * time.Second
	secrets := &agent.MountedPullSecrets{Dir: f.pullSecretDir, Names: f.pullSecrets}
	var a *agent.Agent
	var checkSecrets time.Duration // no secret, nothing to check
	if len(f.pullSecrets) > 0 {
		checkSecrets = secretCheck
		first := true
		secrets.Changed = func(problems []string) {
			if !first {
				log.Info("the mounted pull secrets changed; the images that failed are tried again now")
				a.RetryNow()
			}
			first = false
			for _, p := range problems {
				log.Error(errors.New(p), "pull secret left out; the others still work")
			}
		}
		secrets.Problems() // read them now, to log what is wrong at once
	}

	a = agent.New(cri, pinner, secrets.Credentials, list, agent.Options{
		Parallelism: f.parallelism, AttemptTimeout: f.attemptTimeout,
		Backoff:   agent.Backoff{Initial: f.backoffInitial, Max: f.backoffMax},
		PinBudget: budget, FreeFloor: floor, Sizer: registrySize,
	})
	report, err := reporter(f, out)
	if err != nil {
		return err
	}
	loop := &agent.Loop{Agent: a, Runtime: cri.Name + " " + cri.Version, CanPin: canPin, HealInterval: f.healInterval,
		SecretProblems: secrets.Problems, SecretCheck: checkSecrets, Report: report, Log: log, Lists: lists}
	if f.maxNodesPulling > 0 {
		if loop.Slots, err = pullSlots(f); err != nil {
			return err
		}
	}
	if f.health != "" && !f.once {
		go serveHealth(ctx, f.health, a, log)
	}
	if err := loop.Run(ctx, f.once); err != nil {
		return err
	}
	if cs != nil && ctx.Err() != nil {
		releaseIfRemoved(cs, f.podNamespace, f.daemonSet, a, log)
	}
	if f.once && !a.AllCached() {
		return exitError{code: 1}
	}
	return nil
}

// registrySize reads ref's compressed size for this node's platform (the
// agent runs on the node) from its registry, with the pull's credential.
func registrySize(ctx context.Context, ref string, cred *agent.Credential) (int64, error) {
	auth := authn.Anonymous
	if cred != nil {
		auth = authn.FromConfig(authn.AuthConfig{Username: cred.Username, Password: cred.Password, Auth: cred.Auth,
			IdentityToken: cred.IdentityToken, RegistryToken: cred.RegistryToken})
	}
	platform := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	return registry.Resolver{Timeout: 10 * time.Second}.PlatformSize(ctx, ref, platform, auth)
}

// diskFlag reads a --pin-budget or --imagefs-free-floor; nil when empty.
func diskFlag(flag, value string, lo int) (*config.DiskShare, error) {
	if value == "" {
		return nil, nil
	}
	s, err := config.ParseDiskShare(value, lo)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", flag, value, err)
	}
	return &s, nil
}

// connectCRI waits for the runtime: on a node that is starting, the agent
// may come up before it.
func connectCRI(ctx context.Context, f agentFlags, log logr.Logger) (*agent.CRI, error) {
	wait := time.Second
	for {
		cri, err := agent.Connect(ctx, f.socket, f.hostRoot, 10*time.Second)
		if err == nil || f.once {
			return cri, err
		}
		log.Error(err, "no container runtime yet; trying again", "in", wait)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// reporter publishes on the agent's Pod, or prints when there is none.
func reporter(f agentFlags, out io.Writer) (agent.Reporter, error) {
	if f.podName == "" || f.once {
		return func(_ context.Context, r agentreport.Node) error {
			b, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(out, string(b))
			return err
		}, nil
	}
	cs, err := inCluster()
	if err != nil {
		return nil, fmt.Errorf("report on Pod %s/%s: %w", f.podNamespace, f.podName, err)
	}
	return func(ctx context.Context, r agentreport.Node) error {
		value, err := r.Encode()
		if err != nil {
			return err
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{agentreport.Annotation: value}}})
		if err != nil {
			return err
		}
		_, err = cs.CoreV1().Pods(f.podNamespace).Patch(ctx, f.podName, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kip-agent"})
		return err
	}, nil
}

// inCluster is a client with the agent's own ServiceAccount token.
func inCluster() (kubernetes.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// pullSlots are the Leases through which the agents take turns.
func pullSlots(f agentFlags) (*agent.Slots, error) {
	if f.podName == "" || f.podNamespace == "" {
		return nil, errors.New("--max-nodes-pulling: the pull slots are Leases in the agent's namespace; set --pod-name and --pod-namespace")
	}
	cs, err := inCluster()
	if err != nil {
		return nil, fmt.Errorf("--max-nodes-pulling: %w", err)
	}
	return &agent.Slots{Leases: cs.CoordinationV1().Leases(f.podNamespace), Prefix: f.pullSlots, Count: f.maxNodesPulling,
		Holder: f.podName, DurationSeconds: 30, Retry: 2 * time.Second, Now: time.Now}, nil
}

// serveHealth serves /healthz (the agent runs) and /readyz (every image
// is cached on this node).
func serveHealth(ctx context.Context, addr string, a *agent.Agent, log logr.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		var waiting []string
		for _, r := range a.Report() {
			if r.State != agentreport.StateCached {
				waiting = append(waiting, fmt.Sprintf("%s: %s", r.Name, r.State))
			}
		}
		if len(waiting) > 0 {
			http.Error(w, strings.Join(waiting, "\n"), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Error(err, "health server")
	}
}
