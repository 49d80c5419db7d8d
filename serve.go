package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/config"
)

// HTTP server limits: a token request is small and quick.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 32 << 10
	drainTimeout      = 30 * time.Second
)

func serve(path string, stderr io.Writer) int {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	srv, err := auth.New(cfg, auth.WithLogger(logger))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Close()

	ln, err := listen(cfg.Server)
	if err != nil {
		logger.Error("cannot listen", "addr", cfg.Server.Addr, "err", err)
		return 1
	}
	hs := newHTTPServer(cfg.Server, srv, logger)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if hs.TLSConfig != nil {
			errc <- hs.ServeTLS(ln, cfg.Server.Certificate, cfg.Server.Key)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	logger.Info("gatehouse serving", "version", buildVersion(), "addr", ln.Addr().String(),
		"tls", hs.TLSConfig != nil, "path_prefix", cfg.Server.PathPrefix, "config", path)

	select {
	case err := <-errc:
		logger.Error("server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining in-flight requests", "timeout", drainTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		logger.Error("drain incomplete", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

func newHTTPServer(sc config.Server, h http.Handler, logger *slog.Logger) *http.Server {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if sc.Certificate != "" {
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if v, ok := config.TLSVersions[sc.TLSMinVersion]; ok {
			hs.TLSConfig.MinVersion = v
		}
		if sc.HSTS {
			hs.Handler = hstsHandler(h)
		}
	}
	return hs
}

func hstsHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		h.ServeHTTP(w, r)
	})
}

// listen opens the configured listener; for a unix socket it replaces a
// stale socket file left by an earlier run.
func listen(sc config.Server) (net.Listener, error) {
	network := sc.Net
	if network == "" {
		network = "tcp"
	}
	if network == "unix" {
		if fi, err := os.Lstat(sc.Addr); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			if c, err := net.Dial("unix", sc.Addr); err == nil {
				c.Close()
				return nil, fmt.Errorf("socket %s is in use", sc.Addr)
			}
			_ = os.Remove(sc.Addr)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return net.Listen(network, sc.Addr)
}
