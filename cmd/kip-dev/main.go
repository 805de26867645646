// Command kip-dev holds the developer tools of the local test cluster: OCI
// registries on loopback, the project's image built and pushed without a
// container engine, workspace-like sample images, and direct CRI access to
// each node's runtime. It is not part of the product.
package main

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/dev/cri"
	"github.com/kip-image-puller/kip/internal/dev/imagebuild"
	"github.com/kip-image-puller/kip/internal/dev/localcluster"
	"github.com/kip-image-puller/kip/internal/template"
	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{Use: "kip-dev", Short: "Developer tools of the local test cluster", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(registryCmd(), pushImageCmd(), pushPauseCmd(), pushSamplesCmd(), criCmd(), processCmd(), cacheTableCmd(), benchCmd(), workspaceCmd(), bundleCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kip-dev:", err)
		os.Exit(1)
	}
}

func registryCmd() *cobra.Command {
	var addrs []string
	var dir, user, passwordFile string
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Serve an OCI registry (go-containerregistry) until SIGTERM",
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := []registry.Option{registry.Logger(log.New(io.Discard, "", 0))}
			if dir != "" {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				opts = append(opts, registry.WithBlobHandler(registry.NewDiskBlobHandler(dir)))
			}
			var h http.Handler = registry.New(opts...)
			if user != "" {
				pw, err := os.ReadFile(passwordFile)
				if err != nil {
					return fmt.Errorf("--password-file: %w", err)
				}
				h = basicAuth(h, user, strings.TrimSpace(string(pw)))
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			errs := make(chan error, len(addrs))
			for _, addr := range addrs {
				srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
				go func() {
					<-ctx.Done()
					_ = srv.Close()
				}()
				go func() { errs <- srv.ListenAndServe() }()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "registry on %s (auth: %v)\n", strings.Join(addrs, ", "), user != "")
			for range addrs {
				if err := <-errs; err != http.ErrServerClosed {
					stop()
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&addrs, "addr", []string{"127.0.0.1:5001"}, "addresses to listen on")
	cmd.Flags().StringVar(&dir, "dir", "", "keep blobs in this directory (default: memory)")
	cmd.Flags().StringVar(&user, "user", "", "require basic auth as this user")
	cmd.Flags().StringVar(&passwordFile, "password-file", "", "file holding the password of --user")
	return cmd
}

func basicAuth(next http.Handler, user, password string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="kip-dev"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pushFlags are the destination flags shared by the push commands.
type pushFlags struct {
	registry, user, passwordFile string
}

func (p *pushFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.registry, "registry", "127.0.0.1:5001", "registry host:port")
	cmd.Flags().StringVar(&p.user, "user", "", "basic auth user")
	cmd.Flags().StringVar(&p.passwordFile, "password-file", "", "file holding the password of --user")
}

func (p *pushFlags) auth() (authn.Authenticator, error) {
	if p.user == "" {
		return authn.Anonymous, nil
	}
	pw, err := os.ReadFile(p.passwordFile)
	if err != nil {
		return nil, fmt.Errorf("--password-file: %w", err)
	}
	return &authn.Basic{Username: p.user, Password: strings.TrimSpace(string(pw))}, nil
}

func (p *pushFlags) ref(repoTag string) (name.Reference, error) {
	return name.ParseReference(p.registry + "/" + repoTag)
}

func pushImageCmd() *cobra.Command {
	var pf pushFlags
	var repoTag string
	var platforms []string
	cmd := &cobra.Command{
		Use:   "push-image",
		Short: "Build the project's image (kip and kip-sleep, non-root, no shell) and push it",
		Long: `Build the project's image and push it. Each --platform ARCH=DIR takes the
kip and kip-sleep binaries of that architecture from DIR; several make a
multi-architecture index.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ps []imagebuild.Platform
			for _, p := range platforms {
				arch, dir, ok := strings.Cut(p, "=")
				if !ok {
					return fmt.Errorf("--platform %q: want ARCH=DIR", p)
				}
				ps = append(ps, imagebuild.Platform{Arch: arch, Kip: filepath.Join(dir, "kip"), KipSleep: filepath.Join(dir, "kip-sleep")})
			}
			auth, err := pf.auth()
			if err != nil {
				return err
			}
			ref, err := pf.ref(repoTag)
			if err != nil {
				return err
			}
			if len(ps) == 1 {
				img, err := imagebuild.KipImage(ps[0])
				if err != nil {
					return err
				}
				if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
					return err
				}
			} else {
				idx, err := imagebuild.KipIndex(ps)
				if err != nil {
					return err
				}
				if err := remote.WriteIndex(ref, idx, remote.WithAuth(auth)); err != nil {
					return err
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref.String())
			return nil
		},
	}
	pf.bind(cmd)
	cmd.Flags().StringVar(&repoTag, "image", "kip:dev", "repository:tag in the registry")
	cmd.Flags().StringSliceVar(&platforms, "platform", []string{"amd64=bin"}, "ARCH=DIR holding kip and kip-sleep")
	return cmd
}

func pushPauseCmd() *cobra.Command {
	var pf pushFlags
	var repoTag, sleep string
	cmd := &cobra.Command{
		Use:   "push-pause",
		Short: "Push a pod sandbox (pause) image made of the static sleeper",
		RunE: func(cmd *cobra.Command, _ []string) error {
			img, err := imagebuild.PauseImage(sleep)
			if err != nil {
				return err
			}
			ref, err := pf.ref(repoTag)
			if err != nil {
				return err
			}
			auth, err := pf.auth()
			if err != nil {
				return err
			}
			if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ref.String())
			return nil
		},
	}
	pf.bind(cmd)
	cmd.Flags().StringVar(&repoTag, "image", "pause:3.10", "repository:tag in the registry")
	cmd.Flags().StringVar(&sleep, "kip-sleep", "bin/kip-sleep", "the kip-sleep binary")
	return cmd
}

func pushSamplesCmd() *cobra.Command {
	var pf pushFlags
	var repo, tag, sleep, nameRegistry string
	var count, layers int
	var sizeMB int64
	cmd := &cobra.Command{
		Use:   "push-samples",
		Short: "Push workspace-like images of random content, and print their IMAGES value",
		RunE: func(cmd *cobra.Command, _ []string) error {
			auth, err := pf.auth()
			if err != nil {
				return err
			}
			sleepFile, err := imagebuild.FileFromDisk(sleep, "/bin/sleep", 0o755)
			if err != nil {
				return err
			}
			var entries []string
			for i := 1; i <= count; i++ {
				img, err := imagebuild.SampleImage(sizeMB<<20, layers, sleepFile)
				if err != nil {
					return err
				}
				entry := fmt.Sprintf("%s%d", filepath.Base(repo), i)
				ref, err := pf.ref(fmt.Sprintf("%s%d:%s", repo, i, tag))
				if err != nil {
					return err
				}
				if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
					return fmt.Errorf("push %s: %w", ref, err)
				}
				named := ref.String()
				if nameRegistry != "" {
					named = nameRegistry + "/" + fmt.Sprintf("%s%d:%s", repo, i, tag)
				}
				entries = append(entries, entry+"="+named)
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(entries, ";"))
			return nil
		},
	}
	pf.bind(cmd)
	cmd.Flags().StringVar(&repo, "repo", "ws/app", "repository prefix; images are PREFIX1, PREFIX2, ...")
	cmd.Flags().StringVar(&nameRegistry, "name-registry", "", "registry host:port to name the images by in the output (default: --registry)")
	cmd.Flags().StringVar(&tag, "tag", "v1", "tag of every image")
	cmd.Flags().IntVar(&count, "count", 3, "number of images")
	cmd.Flags().Int64Var(&sizeMB, "size-mb", 20, "size of each image in MB (random content)")
	cmd.Flags().IntVar(&layers, "layers", 3, "random layers per image")
	cmd.Flags().StringVar(&sleep, "kip-sleep", "bin/kip-sleep", "the kip-sleep binary, added as /bin/sleep")
	return cmd
}

func criCmd() *cobra.Command {
	var socket string
	var parallel int
	cmd := &cobra.Command{Use: "cri", Short: "Talk to a node's runtime through its CRI socket"}
	cmd.PersistentFlags().StringVar(&socket, "socket", "", "CRI socket path")
	dial := func() (*cri.Client, error) {
		if socket == "" {
			return nil, fmt.Errorf("--socket is required")
		}
		return cri.Dial(socket)
	}
	images := &cobra.Command{
		Use:   "images",
		Short: "List the image references the runtime holds",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			refs, err := c.ImageRefs(cmd.Context())
			if err != nil {
				return err
			}
			var list []string
			for r := range refs {
				list = append(list, r)
			}
			sort.Strings(list)
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(list, "\n"))
			return nil
		},
	}
	pull := &cobra.Command{
		Use:   "pull IMAGE...",
		Short: "Pull images straight through the CRI and print how long each took",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			start := time.Now()
			for _, r := range c.Pull(cmd.Context(), args, parallel) {
				if r.Err != nil {
					return fmt.Errorf("%s: %w", r.Ref, r.Err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%v\n", r.Ref, r.Duration.Round(time.Millisecond))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "total\t%v\n", time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	pull.Flags().IntVar(&parallel, "parallel", 1, "pulls in flight")
	teardown := &cobra.Command{
		Use:   "teardown",
		Short: "Stop and remove every pod sandbox (network namespaces and mounts included)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			n, err := c.StopAllPods(ctx)
			fmt.Fprintf(cmd.OutOrStdout(), "%d pods removed\n", n)
			return err
		},
	}
	cmd.AddCommand(images, pull, teardown)
	return cmd
}

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

func cacheTableCmd() *cobra.Command {
	var clusterDir, images string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "cache-table --images IMAGES",
		Short: "Print which node's runtime holds which image, asking each node's CRI socket",
		Long: `Print a node x image table of the local cluster, asking each node's
containerd through its CRI socket. With --wait, wait until every node holds
every image (exit 1 when the time is up) and print how long that took.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			entries, err := config.ParseImages(images)
			if err != nil {
				return err
			}
			e, err := localcluster.Load(clusterDir)
			if err != nil {
				return err
			}
			start := time.Now()
			for {
				held, err := e.NodeImages(cmd.Context())
				if err != nil {
					return err
				}
				table, complete := cacheTable(e.Nodes, held, entries)
				if complete || wait == 0 || time.Since(start) > wait {
					fmt.Fprint(cmd.OutOrStdout(), table)
					if wait > 0 {
						if !complete {
							return fmt.Errorf("not every node holds every image after %v", wait)
						}
						fmt.Fprintf(cmd.OutOrStdout(), "every node holds every image, %v after the wait began\n", time.Since(start).Round(100*time.Millisecond))
					}
					return nil
				}
				time.Sleep(250 * time.Millisecond)
			}
		},
	}
	cmd.Flags().StringVar(&clusterDir, "cluster-dir", localcluster.DefaultDir, "the local cluster's directory")
	cmd.Flags().StringVar(&images, "images", "", "an IMAGES value")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for every node to hold every image")
	_ = cmd.MarkFlagRequired("images")
	return cmd
}

func cacheTable(nodes []string, held map[string]map[string]bool, images []config.Image) (string, bool) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "NODE")
	for _, img := range images {
		fmt.Fprint(tw, "\t"+img.Name)
	}
	fmt.Fprintln(tw)
	complete := true
	for _, node := range nodes {
		fmt.Fprint(tw, node)
		for _, img := range images {
			mark := "cached"
			if !cri.Has(held[node], img.Ref) {
				mark, complete = "-", false
			}
			fmt.Fprint(tw, "\t"+mark)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	return b.String(), complete
}

func workspaceCmd() *cobra.Command {
	var clusterDir, node, image, podName string
	cmd := &cobra.Command{
		Use:   "workspace-start --image IMAGE",
		Short: "Start a workspace-like pod on a node and print the seconds until it is Ready",
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := localcluster.Load(clusterDir)
			if err != nil {
				return err
			}
			d, err := e.StartWorkspace(podName, node, image)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%.1f\n", d.Seconds())
			return nil
		},
	}
	cmd.Flags().StringVar(&clusterDir, "cluster-dir", localcluster.DefaultDir, "the local cluster's directory")
	cmd.Flags().StringVar(&node, "node", "node1", "node to run on")
	cmd.Flags().StringVar(&image, "image", "", "the workspace image")
	cmd.Flags().StringVar(&podName, "name", "workspace", "pod name (namespace default)")
	_ = cmd.MarkFlagRequired("image")
	return cmd
}
