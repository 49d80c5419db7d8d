package auth

import (
	"log/slog"

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
}

// authorizer decides one scope the static acl does not match. A decision
// that matches no rule passes the scope to the next authorizer of the
// state's list, in docker_auth's order: acl_mongo (then acl_xorm,
// ext_authz, casbin).
type authorizer interface {
	// source names it in the audit line's decisions ("" for the static acl).
	source() string
	// decide decides r; err means it could not answer.
	decide(r *acl.Request) (acl.Decision, error)
}

// mongoACL is the `acl_mongo:` section; a decision's Rule is the deciding
// document's seq.
type mongoACL struct{ m *acl.Mongo }

func (m mongoACL) source() string { return "acl_mongo" }
func (m mongoACL) decide(r *acl.Request) (acl.Decision, error) {
	md, err := m.m.Decide(r)
	d := md.Decision
	if err == nil && d.Matched {
		d.Rule = int(md.Seq)
	}
	return d, err
}

var _ authorizer = mongoACL{}
