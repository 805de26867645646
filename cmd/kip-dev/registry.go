package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/spf13/cobra"

	"github.com/kip-image-puller/kip/internal/dev/registrytest"
)

func registryCmd() *cobra.Command {
	var addrs []string
	var dir, user, passwordFile string
	var latency time.Duration
	var mbPerSecond int
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Serve an OCI registry (go-containerregistry) until SIGTERM",
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := []registry.Option{registry.Logger(log.New(io.Discard, "", 0))}
			if dir != "" {
				if err := os.MkdirAll(dir, 0o750); err != nil {
					return err
				}
				opts = append(opts, registry.WithBlobHandler(registry.NewDiskBlobHandler(dir)))
			}
			h := registrytest.Shape(registry.New(opts...), latency, mbPerSecond<<20)
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
				if err := <-errs; !errors.Is(err, http.ErrServerClosed) {
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
	cmd.Flags().DurationVar(&latency, "latency", 0, "delay each answer's first byte, like a remote registry (e.g. 80ms)")
	cmd.Flags().IntVar(&mbPerSecond, "stream-mb-per-second", 0, "cap each answer's body at this many MiB/s, one stream's share of a link (0: no cap)")
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
