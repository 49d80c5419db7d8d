// Command registry2 serves github.com/docker/distribution v2.8.3 the way the
// official registry:2.8.3 image does (`registry serve CONFIG`, REGISTRY_*
// environment overrides, filesystem and in-memory storage, token auth), for
// the docker end-to-end test (e2e/docker/run.sh), which builds it into an
// image FROM scratch. v2.8.3's own cmd/registry cannot be built: its registry
// package imports the unavailable rsc.io/letsencrypt, so this wraps
// registry/handlers.NewApp instead. It serves plain HTTP only.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/docker/distribution/configuration"
	dcontext "github.com/docker/distribution/context"
	"github.com/docker/distribution/registry/handlers"
	"github.com/sirupsen/logrus"

	_ "github.com/docker/distribution/registry/auth/htpasswd"
	_ "github.com/docker/distribution/registry/auth/token"
	_ "github.com/docker/distribution/registry/storage/driver/filesystem"
	_ "github.com/docker/distribution/registry/storage/driver/inmemory"
)

const usage = "usage: registry2 [serve] CONFIG\n"

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	if len(args) != 1 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err := run(args[0]); err != nil {
		fmt.Fprintln(os.Stderr, "registry2:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	cfg, err := configuration.Parse(f) // applies the REGISTRY_* environment
	f.Close()
	if err != nil {
		return fmt.Errorf("configuration %s: %w", path, err)
	}
	if cfg.HTTP.TLS.Certificate != "" {
		return errors.New("http.tls is not supported by this wrapper")
	}
	level, err := logrus.ParseLevel(string(cfg.Log.Level))
	if err != nil {
		level = logrus.InfoLevel
	}
	logrus.SetLevel(level)
	logrus.SetFormatter(&logrus.TextFormatter{TimestampFormat: time.RFC3339Nano})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx = dcontext.WithVersion(ctx, "v2.8.3")
	app := handlers.NewApp(ctx, cfg) // panics, as the real registry does, on a bad auth or storage setup

	addr := cfg.HTTP.Addr
	if addr == "" {
		addr = ":5000"
	}
	srv := &http.Server{Addr: addr, Handler: app, ReadHeaderTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logrus.Infof("listening on %s (distribution v2.8.3, handlers.NewApp)", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
