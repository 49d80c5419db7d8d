package authn

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// LDAP authenticates accounts against an LDAP directory or Active
// Directory: it searches for the account's entry as the service account,
// binds as that entry with the password, and binds back.
//
// Connections are pooled and bound as the service account (anonymous
// without one); a connection that was bound as a user is bound back before
// it returns to the pool, or closed. Addresses are tried in order; one that
// fails is skipped for a while as long as another answers.
type LDAP struct {
	cfg       LDAPConfig
	pool      *ldapPool
	attrs     []string // attributes the account search asks for
	timeout   time.Duration
	logger    *slog.Logger
	timeLimit int // the search time limit sent to the server, in seconds
	// accountAttr is the attribute whose value is the account's name
	// (account_attribute, or the one the filter compares with ${account});
	// "" keeps names as typed.
	accountAttr string
}

var (
	_ Authenticator = (*LDAP)(nil)
	_ Checker       = (*LDAP)(nil)
	_ io.Closer     = (*LDAP)(nil)
)

// LDAPOption configures an LDAP authenticator.
type LDAPOption func(*LDAP)

// WithLDAPLogger sets where the authenticator logs server failover and
// directory problems; the default discards.
func WithLDAPLogger(l *slog.Logger) LDAPOption {
	return func(a *LDAP) { a.logger = l }
}

// NewLDAP validates cfg, reads bind_password_file and ca_certificate, and
// returns the authenticator. It does not connect: the first request does,
// so Gatehouse starts while the directory is down. Problems are placed at
// their keys.
func NewLDAP(cfg LDAPConfig, opts ...LDAPOption) (*LDAP, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &LDAP{cfg: cfg, logger: slog.New(slog.DiscardHandler)}
	a.cfg.Labels = maps.Clone(cfg.Labels)
	if g := cfg.GroupSearch; g != nil {
		gs := *g
		a.cfg.GroupSearch = &gs
	}
	for _, o := range opts {
		o(a)
	}
	a.logger = a.logger.With("authenticator", "ldap")
	var errs []error
	password := ""
	if cfg.BindPasswordFile != "" {
		b, err := os.ReadFile(cfg.BindPasswordFile)
		password = strings.TrimSpace(string(b))
		switch {
		case err != nil:
			errs = append(errs, cfgerr.At(fmt.Errorf("ldap: %w", err), "bind_password_file"))
		case password == "":
			errs = append(errs, cfgerr.At(fmt.Errorf("ldap: %s is empty", cfg.BindPasswordFile), "bind_password_file"))
		}
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureTLSSkipVerify}
	if cfg.CACertificate != "" {
		pem, err := os.ReadFile(cfg.CACertificate)
		if err != nil {
			errs = append(errs, cfgerr.At(fmt.Errorf("ldap: %w", err), "ca_certificate"))
		} else {
			tlsCfg.RootCAs = x509.NewCertPool()
			if !tlsCfg.RootCAs.AppendCertsFromPEM(pem) {
				errs = append(errs, cfgerr.At(fmt.Errorf("ldap: %s holds no PEM certificate", cfg.CACertificate), "ca_certificate"))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	servers, _ := cfg.servers()
	connect := cmp.Or(cfg.ConnectTimeout, DefaultLDAPConnectTimeout)
	a.timeout = cmp.Or(cfg.RequestTimeout, DefaultLDAPRequestTimeout)
	a.timeLimit = int(math.Ceil(a.timeout.Seconds()))
	poolDN := cfg.BindDN
	if cfg.InitialBindAsUser {
		poolDN = ""
	}
	a.pool = newLDAPPool(servers, tlsCfg, poolDN, password, cmp.Or(cfg.PoolSize, DefaultLDAPPoolSize), connect, a.timeout, a.logger)
	a.accountAttr = cfg.accountAttribute()
	for _, name := range slices.Sorted(maps.Keys(cfg.Labels)) {
		a.attrs = append(a.attrs, cfg.Labels[name].Attribute)
	}
	for _, attr := range []string{a.accountAttr, cfg.CredentialAttribute} {
		if attr != "" && !slices.ContainsFunc(a.attrs, func(x string) bool { return strings.EqualFold(x, attr) }) {
			a.attrs = append(a.attrs, attr)
		}
	}
	if len(a.attrs) == 0 {
		a.attrs = []string{"1.1"} // RFC 4511: no attributes, only the DN
	}
	return a, nil
}

// Name returns "ldap".
func (a *LDAP) Name() string { return "ldap" }

// Check reads the directory's root DSE on a pooled connection (dialled
// and bound as the service account when none is idle): /readyz uses it.
func (a *LDAP) Check(ctx context.Context) error {
	req := ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		1, a.timeLimit, false, "(objectClass=*)", []string{"1.1"}, nil)
	err := a.pool.run(ctx, func(c *ldapConn) error {
		_, err := a.search(ctx, c, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: ldap: check: %w", ErrUnavailable, err)
	}
	return nil
}

// Close closes the pooled connections.
func (a *LDAP) Close() error {
	a.pool.close()
	return nil
}

// errAmbiguous is an account whose filter finds several entries.
var errAmbiguous = errors.New("ldap: the filter finds more than one entry")

// Authenticate finds account's entry and binds as it with password. An
// empty password is never sent (an LDAP bind without one "succeeds" as
// anonymous): it is ErrNoMatch, as in docker_auth. An account whose filter
// finds several entries is refused as a wrong password, and logged.
func (a *LDAP) Authenticate(ctx context.Context, account, password string) (Account, error) {
	if account == "" || password == "" {
		return Account{}, ErrNoMatch
	}
	var acct Account
	err := a.pool.run(ctx, func(c *ldapConn) (err error) {
		if a.cfg.InitialBindAsUser {
			acct, err = a.authenticateAsUser(ctx, c, account, password)
		} else {
			acct, err = a.authenticate(ctx, c, account, password)
		}
		return err
	})
	switch {
	case errors.Is(err, errAmbiguous):
		a.logger.Error("ldap: refusing an account that matches several entries; make the filter unique", "account", account, "error", err)
		return Account{}, fmt.Errorf("%w: %w", ErrWrongPassword, err)
	case errors.Is(err, errSpelling):
		a.logger.Warn("ldap: refusing a login whose name differs from the directory's", "account", account, "error", err)
		return Account{}, fmt.Errorf("%w: %w", ErrWrongPassword, err)
	}
	return acct, a.outcome(err)
}

// authenticate is search then bind, on a connection bound as the service
// account.
func (a *LDAP) authenticate(ctx context.Context, c *ldapConn, account, password string) (Account, error) {
	entry, err := a.findAccount(ctx, c, account)
	if err != nil {
		return Account{}, err
	}
	name, err := a.spelling(account, entry)
	if err != nil {
		return Account{}, err
	}
	err = a.bindUser(ctx, c, entry.DN, password)
	// Bind back whatever the outcome: a refused bind leaves the connection
	// anonymous, and the group search runs as the service account.
	if selfErr := a.pool.bindSelf(ctx, c); err == nil {
		err = selfErr
	}
	if err != nil {
		return Account{}, err
	}
	return a.account(ctx, c, name, entry)
}

// authenticateAsUser binds as bind_dn with the account filled in (DN
// escaped), searches as the user, and binds as the entry found when it has
// another DN. The directory answers "invalid credentials" alike for an
// unknown DN and a wrong password, so a refused first bind is ErrNoMatch and
// the next authenticator is asked; so is a DN the directory finds malformed.
func (a *LDAP) authenticateAsUser(ctx context.Context, c *ldapConn, account, password string) (Account, error) {
	// On failure c is marked broken, and closed instead of pooled.
	defer func() { _ = a.pool.bindSelf(ctx, c) }()
	dn := strings.ReplaceAll(a.cfg.BindDN, "${account}", ldap.EscapeDN(account))
	if err := a.bindUser(ctx, c, dn, password); err != nil {
		if errors.Is(err, ErrWrongPassword) ||
			ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidDNSyntax) ||
			ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			// %v: the result must not also read as ErrWrongPassword.
			return Account{}, fmt.Errorf("%w: %v", ErrNoMatch, err)
		}
		return Account{}, err
	}
	entry, err := a.findAccount(ctx, c, account)
	if err != nil {
		return Account{}, err
	}
	name, err := a.spelling(account, entry)
	if err != nil {
		return Account{}, err
	}
	if !sameDN(entry.DN, dn) {
		if err := a.bindUser(ctx, c, entry.DN, password); err != nil {
			return Account{}, err
		}
	}
	return a.account(ctx, c, name, entry)
}

// Lookup finds account's entry with the service account's search and
// returns the labels Authenticate would. With initial_bind_as_user there is
// no service account: the search runs anonymously, and a directory that
// refuses it makes the account unknown (its refresh tokens stop working and
// the client logs in with its password again).
func (a *LDAP) Lookup(ctx context.Context, account string) (Account, error) {
	if account == "" {
		return Account{}, ErrNoMatch
	}
	var acct Account
	err := a.pool.run(ctx, func(c *ldapConn) error {
		entry, err := a.findAccount(ctx, c, account)
		if err != nil {
			return err
		}
		name, err := a.spelling(account, entry)
		if err != nil {
			return err
		}
		acct, err = a.account(ctx, c, name, entry)
		return err
	})
	switch {
	case errors.Is(err, errAmbiguous), errors.Is(err, errSpelling):
		a.logger.Error("ldap: account no longer resolves to one entry of that name", "account", account, "error", err)
		return Account{}, fmt.Errorf("%w: %w", ErrNoMatch, err)
	case a.cfg.InitialBindAsUser && ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights):
		return Account{}, fmt.Errorf("%w: %w", ErrNoMatch, err)
	}
	return acct, a.outcome(err)
}

// outcome maps an error to the package's sentinels: anything that is not
// an answer about the account is a backend failure.
func (a *LDAP) outcome(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrNoMatch), errors.Is(err, ErrWrongPassword):
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// findAccount searches for account's entry: exactly one, or ErrNoMatch, or
// errAmbiguous.
func (a *LDAP) findAccount(ctx context.Context, c *ldapConn, account string) (*ldap.Entry, error) {
	filter := strings.ReplaceAll(a.cfg.Filter, "${account}", ldap.EscapeFilter(account))
	req := ldap.NewSearchRequest(a.cfg.Base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, a.timeLimit, false, filter, a.attrs, nil)
	res, err := a.search(ctx, c, req)
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded), err == nil && len(res.Entries) > 1:
		return nil, fmt.Errorf("%w: %s under %s", errAmbiguous, filter, a.cfg.Base)
	case err != nil:
		return nil, fmt.Errorf("ldap: searching %s for %s: %w", a.cfg.Base, filter, err)
	case len(res.Entries) == 0:
		return nil, ErrNoMatch
	}
	return res.Entries[0], nil
}

func (a *LDAP) search(ctx context.Context, c *ldapConn, req *ldap.SearchRequest) (res *ldap.SearchResult, err error) {
	err = c.do(ctx, a.timeout, func(l *ldap.Conn) error {
		res, err = l.Search(req)
		return err
	})
	return res, err
}

// bindUser binds c as dn; a wrong password is ErrWrongPassword. The
// connection is marked so that it is bound back before reuse.
func (a *LDAP) bindUser(ctx context.Context, c *ldapConn, dn, password string) error {
	c.userBound = true
	err := c.do(ctx, a.timeout, func(l *ldap.Conn) error { return l.Bind(dn, password) })
	switch {
	case err == nil:
		return nil
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials):
		return fmt.Errorf("%w: ldap: bind as %s: %w", ErrWrongPassword, dn, err)
	}
	return fmt.Errorf("ldap: bind as %s: %w", dn, err)
}

// errSpelling is a login whose name is not the directory's spelling, with
// account_spelling: exact, or that matches none of the entry's names.
var errSpelling = errors.New("ldap: the name differs from the directory's")

// spelling returns the account's name as the directory spells it: the value
// of the account attribute that equals typed, compared without case (the
// directory matched it so). With account_spelling: exact, typed must be
// that value exactly. When the entry holds no such value (a filter that
// matched on another attribute) and exactly one value, that one is the
// name. Without an account attribute the name stays as typed.
func (a *LDAP) spelling(typed string, entry *ldap.Entry) (string, error) {
	if a.accountAttr == "" {
		return typed, nil
	}
	values := entry.GetEqualFoldAttributeValues(a.accountAttr)
	for _, v := range values {
		if v == typed {
			return v, nil
		}
	}
	if a.cfg.AccountSpelling == LDAPSpellingExact {
		return "", fmt.Errorf("%w: %q is spelled %q there (account_spelling: exact)", errSpelling, typed, values)
	}
	for _, v := range values {
		if strings.EqualFold(v, typed) {
			return v, nil
		}
	}
	if len(values) == 1 {
		return values[0], nil
	}
	return "", fmt.Errorf("%w: %s of %s holds %q, none of them %q", errSpelling, a.accountAttr, entry.DN, values, typed)
}

// account is the Account of entry, named name: its labels, and the value of
// credential_attribute as its credential.
func (a *LDAP) account(ctx context.Context, c *ldapConn, name string, entry *ldap.Entry) (Account, error) {
	labels, err := a.labels(ctx, c, name, entry)
	if err != nil {
		return Account{}, err
	}
	acct := Account{Name: name, Labels: labels}
	if attr := a.cfg.CredentialAttribute; attr != "" {
		acct.Credential = strings.Join(entry.GetEqualFoldAttributeValues(attr), "\x00")
	}
	return acct, nil
}

// labels builds the account's labels from its entry's attributes and from
// the group search.
func (a *LDAP) labels(ctx context.Context, c *ldapConn, account string, entry *ldap.Entry) (Labels, error) {
	labels := Labels{}
	add := func(key, v string) {
		if v != "" && !slices.Contains(labels[key], v) {
			labels[key] = append(labels[key], v)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(a.cfg.Labels)) {
		m := a.cfg.Labels[name]
		for _, v := range entry.GetEqualFoldAttributeValues(m.Attribute) {
			if m.ParseCN {
				v = cnOf(v)
			}
			if m.LowerCase {
				v = strings.ToLower(v)
			}
			add(name, v)
		}
	}
	if g := a.cfg.GroupSearch; g != nil {
		filter := strings.NewReplacer("${account}", ldap.EscapeFilter(account), "${dn}", ldap.EscapeFilter(entry.DN)).Replace(g.Filter)
		req := ldap.NewSearchRequest(g.Base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, a.timeLimit, false, filter, []string{g.Attribute}, nil)
		res, err := a.search(ctx, c, req)
		if err != nil {
			return nil, fmt.Errorf("ldap: group search in %s for %s: %w", g.Base, filter, err)
		}
		for _, e := range res.Entries {
			for _, v := range e.GetEqualFoldAttributeValues(g.Attribute) {
				add(g.Label, v)
			}
		}
	}
	if len(labels) == 0 {
		return nil, nil
	}
	return labels, nil
}

// cnOf returns the first CN of dn, or dn itself when it has none or is not
// a DN (docker_auth's parse_cn, with attribute types compared without case:
// OpenLDAP writes "cn=", Active Directory "CN=").
func cnOf(dn string) string {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return dn
	}
	for _, rdn := range parsed.RDNs {
		for _, at := range rdn.Attributes {
			if strings.EqualFold(at.Type, "cn") {
				return at.Value
			}
		}
	}
	return dn
}

// sameDN compares two DNs as the directory would, without case.
func sameDN(x, y string) bool {
	dx, err1 := ldap.ParseDN(x)
	dy, err2 := ldap.ParseDN(y)
	if err1 != nil || err2 != nil {
		return strings.EqualFold(x, y)
	}
	return dx.EqualFold(dy)
}
