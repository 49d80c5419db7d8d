package authn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

const (
	// ldapRetryDown is how long a server that failed is skipped (while
	// another one answers) before it is tried again.
	ldapRetryDown = 30 * time.Second
	// ldapMaxIdle is how long an idle connection is kept: firewalls drop
	// quiet connections without telling either side.
	ldapMaxIdle = 2 * time.Minute
)

// ldapPool holds connections to the directory, bound as the service account
// (or anonymous when there is none). A connection is either idle in the pool
// or used by exactly one request; at most size exist at once.
type ldapPool struct {
	servers        []ldapServer
	tls            *tls.Config // without ServerName; set per server
	bindDN, bindPW string      // "" for anonymous
	connectTimeout time.Duration
	requestTimeout time.Duration
	logger         *slog.Logger
	now            func() time.Time
	retryDown      time.Duration
	reuse          bool            // false: a new connection per request (benchmarks)
	onDial         func(*ldapConn) // called for every new connection (tests)

	slots chan struct{} // one token per open connection

	mu        sync.Mutex
	idle      []*ldapConn
	downUntil []time.Time // per server; zero when it answers
	closed    bool
}

// ldapConn is one connection and what the pool knows about it.
type ldapConn struct {
	l        *ldap.Conn
	raw      net.Conn // the TCP connection; closing it aborts any operation
	server   int      // index into ldapPool.servers
	lastUsed time.Time
	reused   bool // taken from the idle list, not dialled for this request
	// userBound is set by a bind as anything but the pool's identity; the
	// connection must be bound back before it returns to the pool.
	userBound bool
	broken    bool // must be closed, not pooled
	timedOut  bool // an operation ran past its deadline
}

func newLDAPPool(servers []ldapServer, tlsCfg *tls.Config, bindDN, bindPW string, size int, connect, request time.Duration, logger *slog.Logger) *ldapPool {
	return &ldapPool{
		servers:        servers,
		tls:            tlsCfg,
		bindDN:         bindDN,
		bindPW:         bindPW,
		connectTimeout: connect,
		requestTimeout: request,
		logger:         logger,
		now:            time.Now,
		retryDown:      ldapRetryDown,
		reuse:          true,
		slots:          make(chan struct{}, size),
		downUntil:      make([]time.Time, len(servers)),
	}
}

// run calls fn with a connection. When fn fails because a connection taken
// from the pool turned out dead (the server restarted while it was idle),
// fn runs once more on a new connection.
func (p *ldapPool) run(ctx context.Context, fn func(*ldapConn) error) error {
	for attempt := 0; ; attempt++ {
		c, err := p.get(ctx)
		if err != nil {
			return err
		}
		reused := c.reused
		err = fn(c)
		p.put(ctx, c)
		if err == nil || !c.broken || !reused || c.timedOut || attempt > 0 || ctx.Err() != nil {
			return err
		}
		p.logger.Debug("ldap: pooled connection failed, retrying on a new one", "addr", p.servers[c.server].addr, "error", err)
	}
}

// get returns an idle connection or dials a new one, waiting for a free
// slot while size connections are in use.
func (p *ldapPool) get(ctx context.Context) (*ldapConn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("ldap: waiting for a free connection: %w", ctx.Err())
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.slots
			return nil, errors.New("ldap: authenticator closed")
		}
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if c.l.IsClosing() || p.now().Sub(c.lastUsed) > ldapMaxIdle {
			c.close()
			continue
		}
		c.reused = true
		return c, nil
	}
	c, err := p.dial(ctx)
	if err != nil {
		<-p.slots
		return nil, err
	}
	if p.onDial != nil {
		p.onDial(c)
	}
	return c, nil
}

// put returns c to the pool, or closes it when it is broken, still bound as
// a user, or connected to a server other than the preferred one.
func (p *ldapPool) put(ctx context.Context, c *ldapConn) {
	defer func() { <-p.slots }()
	if c.userBound && !c.broken {
		// The callers bind back themselves; this is the safety net.
		if err := p.bindSelf(ctx, c); err != nil {
			c.broken = true
		}
	}
	p.mu.Lock()
	keep := p.reuse && !p.closed && !c.broken && !c.userBound && !c.l.IsClosing() && c.server == p.preferredLocked()
	if keep {
		c.lastUsed, c.reused = p.now(), false
		p.idle = append(p.idle, c)
	}
	p.mu.Unlock()
	if !keep {
		c.close()
	}
}

// bindSelf binds c back as the pool's identity: the service account, or
// anonymous.
func (p *ldapPool) bindSelf(ctx context.Context, c *ldapConn) error {
	if c.broken {
		return errors.New("ldap: connection broken")
	}
	err := c.do(ctx, p.requestTimeout, func(l *ldap.Conn) error {
		if p.bindDN == "" {
			return l.UnauthenticatedBind("")
		}
		return l.Bind(p.bindDN, p.bindPW)
	})
	if err != nil {
		c.broken = true
		return fmt.Errorf("ldap: binding back as %s: %w", p.identity(), err)
	}
	c.userBound = false
	return nil
}

func (p *ldapPool) identity() string {
	if p.bindDN == "" {
		return "anonymous"
	}
	return p.bindDN
}

// preferredLocked is the first server not marked down (0 when all are).
func (p *ldapPool) preferredLocked() int {
	now := p.now()
	for i, t := range p.downUntil {
		if !now.Before(t) {
			return i
		}
	}
	return 0
}

// dial connects to the first server that answers: those not marked down in
// order, then, as a last resort, those marked down.
func (p *ldapPool) dial(ctx context.Context) (*ldapConn, error) {
	p.mu.Lock()
	now := p.now()
	var up, down []int
	for i, t := range p.downUntil {
		if now.Before(t) {
			down = append(down, i)
		} else {
			up = append(up, i)
		}
	}
	p.mu.Unlock()
	var errs []error
	for _, i := range append(up, down...) {
		c, err := p.dialServer(ctx, i)
		p.mark(i, err)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// mark records whether server i answered, and logs when that changes.
func (p *ldapPool) mark(i int, err error) {
	p.mu.Lock()
	wasDown := !p.downUntil[i].IsZero()
	if err == nil {
		p.downUntil[i] = time.Time{}
	} else {
		p.downUntil[i] = p.now().Add(p.retryDown)
	}
	p.mu.Unlock()
	switch {
	case err != nil && !wasDown:
		p.logger.Warn("ldap: server failed; skipping it while another answers", "addr", p.servers[i].addr, "retry_in", p.retryDown, "error", err)
	case err == nil && wasDown:
		p.logger.Info("ldap: server answers again", "addr", p.servers[i].addr)
	}
}

// dialServer opens a connection to server i: TCP, TLS (LDAPS or StartTLS)
// and the pool's bind, all within connect_timeout.
func (p *ldapPool) dialServer(ctx context.Context, i int) (*ldapConn, error) {
	s := p.servers[i]
	ctx, cancel := context.WithTimeout(ctx, p.connectTimeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("ldap: %s: %w", s.addr, err)
	}
	// Closing the socket aborts the TLS handshake and any LDAP operation.
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	var tlsCfg *tls.Config
	if s.tls != LDAPTLSNone {
		tlsCfg = p.tls.Clone()
		tlsCfg.ServerName = s.host
	}
	netConn := raw
	if s.tls == LDAPTLSAlways {
		tc := tls.Client(raw, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			stop()
			_ = raw.Close()
			return nil, fmt.Errorf("ldap: %s: tls: %w", s.addr, err)
		}
		netConn = tc
	}
	l := ldap.NewConn(netConn, s.tls == LDAPTLSAlways)
	l.Start()
	// Operations are bounded by their context (ldapConn.do); go-ldap's own
	// timeout is only a backstop, longer so that it never fires first.
	l.SetTimeout(p.requestTimeout + p.connectTimeout)
	fail := func(step string, err error) (*ldapConn, error) {
		stop()
		_ = raw.Close()
		_ = l.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("ldap: %s: %s: %w", s.addr, step, err)
	}
	if s.tls == LDAPTLSStartTLS {
		if err := l.StartTLS(tlsCfg); err != nil {
			return fail("starttls", err)
		}
	}
	if p.bindDN != "" {
		if err := l.Bind(p.bindDN, p.bindPW); err != nil {
			return fail("service bind as "+p.bindDN, err)
		}
	}
	if !stop() {
		return fail("connecting", ctx.Err())
	}
	return &ldapConn{l: l, raw: raw, server: i}, nil
}

// close closes every idle connection; connections in use are closed when
// they are put back.
func (p *ldapPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// close closes the socket first, so that closing the LDAP connection does
// not wait for anything.
func (c *ldapConn) close() {
	_ = c.raw.Close()
	_ = c.l.Close()
}

// do runs op on c within ctx and timeout. A deadline or cancellation closes
// the socket, which makes op return; the connection is then broken, as it is
// after any error that is not an LDAP result from the server.
func (c *ldapConn) do(ctx context.Context, timeout time.Duration, op func(*ldap.Conn) error) error {
	if err := ctx.Err(); err != nil {
		c.broken, c.timedOut = true, true
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = c.raw.Close() })
	err := op(c.l)
	if !stop() {
		c.broken, c.timedOut = true, true
		if err != nil {
			return fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil
	}
	if err != nil && !isLDAPResult(err) {
		c.broken = true
	}
	return err
}

// isLDAPResult reports whether err is a result the server sent (wrong
// password, no such object, …) on a healthy connection, rather than a
// network or protocol failure.
func isLDAPResult(err error) bool {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return false
	}
	switch le.ResultCode {
	case ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultOther:
		return false
	}
	return le.ResultCode < ldap.ErrorNetwork
}
