package auth

import (
	"log/slog"
	"time"

	"github.com/gatehouse/gatehouse/acl"
	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/config"
)

// authenticatorFactory builds the authenticator of one configuration
// section; it returns nil, nil when the section is absent.
type authenticatorFactory struct {
	section string
	build   func(cfg *config.Config, logger *slog.Logger) (authn.Authenticator, error)
}

// authenticators are the authenticator sections in the order the chain asks
// them, docker_auth's. A new backend is its file in authn/ and one line
// here.
var authenticators = []authenticatorFactory{
	{"users", func(cfg *config.Config, _ *slog.Logger) (authn.Authenticator, error) {
		if len(cfg.Users) == 0 {
			return nil, nil
		}
		return authn.NewStatic(cfg.Users)
	}},
	{"htpasswd_auth", func(cfg *config.Config, _ *slog.Logger) (authn.Authenticator, error) {
		if cfg.Htpasswd == nil {
			return nil, nil
		}
		return authn.NewHtpasswd(*cfg.Htpasswd)
	}},
	{"ext_auth", func(cfg *config.Config, logger *slog.Logger) (authn.Authenticator, error) {
		if cfg.ExtAuth == nil {
			return nil, nil
		}
		return authn.NewExt(*cfg.ExtAuth, authn.WithExtLogger(logger))
	}},
	{"ldap_auth", func(cfg *config.Config, logger *slog.Logger) (authn.Authenticator, error) {
		if cfg.LDAP == nil {
			return nil, nil
		}
		return authn.NewLDAP(*cfg.LDAP, authn.WithLDAPLogger(logger))
	}},
	{"mongo_auth", func(cfg *config.Config, logger *slog.Logger) (authn.Authenticator, error) {
		if cfg.Mongo == nil {
			return nil, nil
		}
		return authn.NewMongo(*cfg.Mongo, authn.WithMongoLogger(logger))
	}},
	{"xorm_auth", func(cfg *config.Config, _ *slog.Logger) (authn.Authenticator, error) {
		if cfg.Xorm == nil {
			return nil, nil
		}
		return authn.NewXorm(*cfg.Xorm)
	}},
}

// authorizerFactory builds the authorizer of one configuration section; it
// returns nil, nil when the section is absent. previous is the state being
// replaced (nil at startup), whose authorizer of the same section the new
// one may take over from (acl_mongo keeps its last good rules).
type authorizerFactory struct {
	section string
	build   func(cfg *config.Config, logger *slog.Logger, previous *state) (authorizer, error)
}

// authorizers are the authorizer sections consulted, in order, for the
// scopes the static acl does not match: docker_auth's order (acl_mongo, then
// acl_xorm, ext_authz, casbin). A new authorizer is its type and one line
// here.
var authorizers = []authorizerFactory{
	{"acl_mongo", func(cfg *config.Config, logger *slog.Logger, previous *state) (authorizer, error) {
		if cfg.ACLMongo == nil {
			return nil, nil
		}
		opts := []acl.MongoOption{acl.WithMongoLogger(logger)}
		if previous != nil {
			// A reload while MongoDB is unreachable keeps the last good ACL.
			opts = append(opts, acl.WithPrevious(previous.mongoACL()))
		}
		m, err := acl.NewMongo(*cfg.ACLMongo, opts...)
		if err != nil {
			return nil, err
		}
		return mongoACL{seqACL{m}}, nil
	}},
	{"acl_xorm", func(cfg *config.Config, logger *slog.Logger, previous *state) (authorizer, error) {
		if cfg.ACLXorm == nil {
			return nil, nil
		}
		opts := []acl.XormOption{acl.WithXormLogger(logger)}
		if previous != nil {
			opts = append(opts, acl.WithPreviousXorm(previous.xormACL()))
		}
		x, err := acl.NewXorm(*cfg.ACLXorm, opts...)
		if err != nil {
			return nil, err
		}
		return xormACL{seqACL{x}}, nil
	}},
	{"ext_authz", func(cfg *config.Config, logger *slog.Logger, _ *state) (authorizer, error) {
		if cfg.ExtAuthz == nil {
			return nil, nil
		}
		e, err := acl.NewExt(*cfg.ExtAuthz, logger)
		if err != nil {
			return nil, err
		}
		return extAuthz{e}, nil
	}},
	{"casbin_authz", func(cfg *config.Config, _ *slog.Logger, _ *state) (authorizer, error) {
		if cfg.Casbin == nil {
			return nil, nil
		}
		c, err := acl.NewCasbin(*cfg.Casbin)
		if err != nil {
			return nil, err
		}
		return casbinACL{c}, nil
	}},
}

// authorizer decides one scope the static acl does not match. A decision
// that matches no rule passes the scope to the next authorizer of the
// state's list.
type authorizer interface {
	// source names it in the audit line's decisions ("" for the static acl).
	source() string
	// decide decides r; err means it could not answer.
	decide(r *acl.Request) (acl.Decision, error)
	// notReady says why /readyz should fail, "" when it can decide.
	notReady() string
	// Close releases its clients when its state is retired.
	Close() error
}

// seqDecider is an ACL loaded from a database (acl_mongo, acl_xorm):
// decisions carry the deciding rule's seq.
type seqDecider interface {
	Decide(r *acl.Request) (acl.SeqDecision, error)
	LoadedAt() time.Time
	LoadFailures() uint64
	Close() error
}

// seqACL adapts a seqDecider; a decision's Rule is the deciding rule's seq.
type seqACL struct{ d seqDecider }

func (s seqACL) Close() error { return s.d.Close() }
func (s seqACL) notReady() string {
	if s.d.LoadedAt().IsZero() {
		return "rules not loaded yet"
	}
	return ""
}
func (s seqACL) decide(r *acl.Request) (acl.Decision, error) {
	sd, err := s.d.Decide(r)
	d := sd.Decision
	if err == nil && d.Matched {
		d.Rule = int(sd.Seq)
	}
	return d, err
}

// loadFailures counts the failed loads, for gatehouse_acl_load_failures_total.
func (s seqACL) loadFailures() uint64 { return s.d.LoadFailures() }

// mongoACL is the `acl_mongo:` section.
type mongoACL struct{ seqACL }

func (mongoACL) source() string { return "acl_mongo" }

// xormACL is the `acl_xorm:` section.
type xormACL struct{ seqACL }

func (xormACL) source() string { return "acl_xorm" }

var (
	_ authorizer = mongoACL{}
	_ authorizer = xormACL{}
)
