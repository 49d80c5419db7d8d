package daemon

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
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"github.com/gatehouse/gatehouse/auth"
	"github.com/gatehouse/gatehouse/config"
)

// HTTP server limits: a token request is small and quick. Headers and body
// share one read deadline (readTimeout is also the header timeout): net/http
// then sets it once per request instead of twice (a timer update each).
const (
	readTimeout    = 10 * time.Second
	writeTimeout   = 30 * time.Second
	idleTimeout    = 120 * time.Second
	maxHeaderBytes = 1 << 20 // a hard cap; the handler refuses more than auth.MaxHeaderLength with an errcode body
	drainTimeout   = 30 * time.Second
)

// Serve loads the configuration file at path, builds the server and serves
// it until ctx is done or the process receives SIGTERM or SIGINT; then it
// drains the requests in flight (at most drainTimeout) and returns. SIGHUP
// and changes to the watched files reload the configuration meanwhile.
// version is reported in the log and in the server's responses and
// metrics. Errors and logs go to stderr. The result is the process exit
// code: 0 after a clean shutdown, 1 when the configuration does not load,
// a listener cannot open, a server stops on its own or the drain is
// incomplete.
func Serve(ctx context.Context, path, version string, stderr io.Writer) int {
	tuneGC()
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Log lines are batched into few writes (logwriter.go); everything
	// written to stderr from here on goes through the batch, in order, and
	// is written out when Serve returns.
	logOut := newBatchWriter(stderr, logFlushDelay)
	defer logOut.Close()
	stderr = logOut
	level := new(slog.LevelVar)
	logger := newLogger(stderr, cfg.Log, level)
	opts := []auth.Option{auth.WithLogger(logger), auth.WithVersion(version)}
	if cfg.Log.Format == "json" {
		opts = append(opts, auth.WithJSONAuditLog(stderr)) // the JSON handler's writer (newLogger)
	}
	srv, cert, err := Build(cfg, opts...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer srv.Close()

	logWarnings(logger, cfg)
	ln, err := listen(cfg.Server.Net, cfg.Server.Addr)
	if err != nil {
		logger.Error("cannot listen", "addr", cfg.Server.Addr, "err", err)
		return 1
	}
	ln = netutil.LimitListener(ln, cfg.Server.Connections())
	var certPtr atomic.Pointer[tls.Certificate]
	certPtr.Store(cert)
	hs := newHTTPServer(cfg.Server, srv, &certPtr, logger)
	run := &httpServers{errc: make(chan error, 2)}
	defer run.close()
	// Read before Serve starts: net/http's HTTP/2 setup may write
	// hs.TLSConfig from the serving goroutine.
	useTLS := hs.TLSConfig != nil
	run.start(hs, func() error {
		if useTLS {
			return hs.ServeTLS(ln, "", "")
		}
		return hs.Serve(ln)
	})
	if cfg.Server.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.Server.MetricsAddr)
		if err != nil {
			logger.Error("cannot listen for metrics", "addr", cfg.Server.MetricsAddr, "err", err)
			return 1
		}
		ms := &http.Server{Handler: metricsMux(srv), ReadHeaderTimeout: readTimeout, IdleTimeout: idleTimeout}
		run.start(ms, func() error { return ms.Serve(mln) })
	}
	logger.Info("gatehouse serving", "version", version, "addr", ln.Addr().String(),
		"tls", useTLS, "path_prefix", cfg.Server.PathPrefix, "metrics_addr", cfg.Server.MetricsAddr, "config", path)

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	rl := &reloader{path: path, srv: srv, cert: &certPtr, logger: logger, level: level, cfg: cfg}
	go rl.run(ctx)

	select {
	case err := <-run.errc:
		run.running--
		logger.Error("server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining in-flight requests", "timeout", drainTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	code := 0
	for _, s := range run.servers {
		if err := s.Shutdown(sctx); err != nil {
			logger.Error("drain incomplete", "err", err)
			code = 1
		}
	}
	logger.Info("stopped")
	return code
}

// httpServers are the HTTP servers Serve started, each in a goroutine
// that sends what its Serve returned on errc.
type httpServers struct {
	servers []*http.Server
	errc    chan error // buffered for every server
	running int        // goroutines that have not sent on errc, or whose send was not received
}

// start runs serve, which serves s, in a goroutine.
func (h *httpServers) start(s *http.Server, serve func() error) {
	h.servers = append(h.servers, s)
	h.running++
	go func() { h.errc <- serve() }()
}

// close closes every server (after a graceful Shutdown, a no-op) and waits
// for their goroutines, so that when Serve returns its listeners are
// closed, whichever way it returns.
func (h *httpServers) close() {
	for _, s := range h.servers {
		s.Close()
	}
	for ; h.running > 0; h.running-- {
		<-h.errc
	}
}

// metricsMux serves the server's Prometheus metrics at /metrics.
func metricsMux(srv *auth.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", srv.Metrics().Handler())
	return mux
}

func newHTTPServer(sc config.Server, h http.Handler, cert *atomic.Pointer[tls.Certificate], logger *slog.Logger) *http.Server {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cert.Load() != nil {
		hs.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			// Read on every handshake, so a reload can replace the certificate.
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert.Load(), nil },
		}
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
func listen(network, addr string) (net.Listener, error) {
	if network == "" {
		network = "tcp"
	}
	if network == "unix" {
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			if c, err := net.Dial("unix", addr); err == nil {
				c.Close()
				return nil, fmt.Errorf("socket %s is in use", addr)
			}
			_ = os.Remove(addr)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return net.Listen(network, addr)
}
