package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/config"
)

// watchInterval is how often the configuration file and the files it
// refers to are checked for changes. Polling content (not inotify) follows
// Kubernetes ConfigMap and Secret updates, which swap a symlink.
const watchInterval = 2 * time.Second

// reloader applies a new configuration on SIGHUP and when a watched file
// changes. A configuration that does not load is logged and counted, and
// the current one keeps serving; listeners are never closed.
type reloader struct {
	path   string
	srv    *auth.Server
	cert   *atomic.Pointer[tls.Certificate]
	logger *slog.Logger
	level  *slog.LevelVar
	cfg    *config.Config // the configuration in force

	seen string // fingerprint of the watched files at the last attempt
}

func (rl *reloader) run(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	rl.seen = fingerprint(rl.watched(rl.cfg))
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			rl.reload("SIGHUP")
		case <-tick.C:
			if fp := fingerprint(rl.watched(rl.cfg)); fp != rl.seen {
				rl.reload("file changed")
			}
		}
	}
}

func (rl *reloader) watched(cfg *config.Config) []string {
	return append([]string{rl.path}, cfg.Files()...)
}

// reload loads and builds the configuration and swaps it in.
func (rl *reloader) reload(reason string) {
	rl.seen = fingerprint(rl.watched(rl.cfg))
	cfg, err := config.Load(rl.path)
	if err == nil {
		rl.seen = fingerprint(rl.watched(cfg))
		var cert *tls.Certificate
		if cert, err = loadServerCertificate(cfg); err == nil {
			if err = rl.srv.Reload(cfg); err == nil {
				rl.apply(cfg, cert, reason)
				return
			}
		} else {
			rl.srv.CountReloadFailure()
		}
	} else {
		rl.srv.CountReloadFailure()
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			rl.logger.Error("reload rejected; the previous configuration keeps serving", "reason", reason, "problem", p.String())
		}
		return
	}
	rl.logger.Error("reload rejected; the previous configuration keeps serving", "reason", reason, "err", err)
}

func (rl *reloader) apply(cfg *config.Config, cert *tls.Certificate, reason string) {
	old := rl.cfg
	rl.cfg = cfg
	rl.level.Set(cfg.Log.SlogLevel())
	if cert != nil && old.Server.Certificate != "" {
		rl.cert.Store(cert)
	}
	o, n := old.Server, cfg.Server
	if o.Addr != n.Addr || o.Net != n.Net || o.MetricsAddr != n.MetricsAddr || o.Connections() != n.Connections() ||
		(o.Certificate == "") != (n.Certificate == "") || old.Log.Format != cfg.Log.Format {
		rl.logger.Warn("reloaded, but listener and log format changes (server.addr, net, metrics_addr, max_connections, TLS on/off, log.format) take effect only after a restart")
	}
	logWarnings(rl.logger, cfg)
	rl.logger.Info("configuration reloaded", "reason", reason, "config", rl.path)
}

// fingerprint hashes the contents of files; a missing or unreadable file
// counts as a distinct state.
func fingerprint(files []string) string {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(f))
		if data, err := os.ReadFile(f); err == nil {
			h.Write([]byte{1})
			h.Write(data)
		} else {
			h.Write([]byte{0})
		}
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil))
}
