package config

import (
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/authn"
	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// Warnings returns what is valid but probably wrong in the configuration,
// each naming its file, line and key as a Problem does. They do not stop
// Gatehouse: validate prints them and serve logs them at start.
func (c *Config) Warnings() []Problem {
	var out []Problem
	warn := func(msg string, path ...string) {
		line, col := c.posOf(path)
		out = append(out, Problem{File: c.file, Line: line, Column: col, Key: cfgerr.Key(path), Msg: msg})
	}
	if s := c.Server; s.RealIPHeader != "" && s.RealIPPos == 0 {
		key := "real_ip_pos"
		if mappingValue(c.value("server"), key) == nil {
			key = "real_ip_header" // real_ip_pos left at its default
		}
		warn("real_ip_pos 0 takes the first entry of "+s.RealIPHeader+", which the client writes: "+
			"any client can then pick the address the throttle counts and ip rules match; "+
			"use -1 (the entry your proxy appends; the same entry for a header the proxy sets alone)",
			"server", key)
	}
	for i, w := range c.Workload {
		tmpl, key := w.Account, "account"
		if tmpl == "" {
			tmpl, key = authn.DefaultWorkloadAccount, "issuer" // account left at its default
		}
		if strings.HasPrefix(tmpl, "${") {
			warn("account "+strconv.Quote(tmpl)+" starts with a claim: the issuer's tokens can then name any account, "+
				"a password user's or another issuer's, and get its ACL rules; "+
				"put literal text before the first placeholder, e.g. \"ci:"+tmpl+"\"",
				"workload_identity", strconv.Itoa(i), key)
		}
	}
	if c.OIDCAuth != nil {
		for _, w := range c.OIDCAuth.warnings() {
			warn(w[0], "oidc_auth", w[1])
		}
	}
	if c.GithubAuth != nil {
		for _, w := range c.GithubAuth.warnings() {
			warn(w[0], "github_auth", w[1])
		}
	}
	if c.GoogleAuth != nil {
		for _, w := range c.GoogleAuth.warnings() {
			warn(w[0], "google_auth", w[1])
		}
	}
	if c.GitlabAuth != nil {
		for _, w := range c.GitlabAuth.warnings() {
			warn(w[0], "gitlab_auth", w[1])
		}
	}
	return out
}
