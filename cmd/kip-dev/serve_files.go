package main

import (
	"context"
	"errors"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// serveFilesCmd serves a folder over plain HTTP: the in-cluster stand-in
// for a web service whose answers are files (Che's dashboard API, with its
// lists mounted from a ConfigMap). Files carry Last-Modified, so clients'
// conditional requests get 304 answers as from the real service.
func serveFilesCmd() *cobra.Command {
	var dir, addr string
	cmd := &cobra.Command{
		Use:   "serve-files --dir DIR",
		Short: "Serve a folder's files over HTTP until SIGTERM (an in-cluster stand-in for a web service)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			srv := &http.Server{Addr: addr, Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-ctx.Done()
				shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(shutdown)
			}()
			if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the folder to serve")
	cmd.Flags().StringVar(&addr, "addr", ":8080", "address to listen on")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}
