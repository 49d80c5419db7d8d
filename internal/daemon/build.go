package daemon

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/config"
	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// newLogger makes the process logger from the log: section; the level can
// change on reload through level.
func newLogger(w io.Writer, lc config.Log, level *slog.LevelVar) *slog.Logger {
	level.Set(lc.SlogLevel())
	opts := &slog.HandlerOptions{Level: level}
	if lc.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Build makes everything a loaded configuration names: the token server
// and the TLS certificate it serves with (nil when server.certificate is
// not set). Serve and a reload build with it, and so does the validate
// command, so a configuration that validates is one that serves. The
// caller closes the server.
func Build(cfg *config.Config, opts ...auth.Option) (*auth.Server, *tls.Certificate, error) {
	cert, err := loadServerCertificate(cfg)
	if err != nil {
		return nil, nil, err
	}
	srv, err := auth.New(cfg, opts...)
	if err != nil {
		return nil, nil, err
	}
	return srv, cert, nil
}

// loadServerCertificate loads server.certificate and server.key; an error
// names the configuration key.
func loadServerCertificate(cfg *config.Config) (*tls.Certificate, error) {
	if cfg.Server.Certificate == "" {
		return nil, nil
	}
	c, err := tls.LoadX509KeyPair(cfg.Server.Certificate, cfg.Server.Key)
	if err != nil {
		return nil, cfg.Annotate(cfgerr.At(fmt.Errorf("loading the TLS key pair: %w", err), "server", "certificate"))
	}
	return &c, nil
}

// logWarnings logs what the configuration has that is valid but probably
// wrong (config.Warnings).
func logWarnings(logger *slog.Logger, cfg *config.Config) {
	for _, p := range cfg.Warnings() {
		logger.Warn("configuration warning", "problem", p.String())
	}
}
