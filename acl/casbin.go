package acl

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	fileadapter "github.com/casbin/casbin/v2/persist/file-adapter"
	"github.com/casbin/casbin/v2/util"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// CasbinConfig is the `casbin_authz:` section, docker_auth's: a casbin
// model and a CSV policy file, read at load (and again on reload, which a
// change to either file triggers).
//
//	casbin_authz:
//	  model_path: /config/casbin_model.conf
//	  policy_path: /config/casbin_policy.csv
//
// Each requested action is enforced on its own with seven request values,
// in docker_auth's order: account, type, name, service, ip, action and the
// account's labels as JSON ({"team":["a","b"]}, or null without labels). The
// model's request_definition must therefore have seven fields. Besides
// casbin's built-in functions the matcher may call labelMatch(r.labels,
// p.labels), true when every value of every label in the policy's JSON is
// among the account's values of that label.
type CasbinConfig struct {
	ModelPath  string `yaml:"model_path"`
	PolicyPath string `yaml:"policy_path"`
}

// Validate checks the section without reading the files.
func (c *CasbinConfig) Validate() error {
	var errs []error
	if c.ModelPath == "" {
		errs = append(errs, cfgerr.At(errors.New("is required: the casbin model (.conf) file"), "model_path"))
	}
	if c.PolicyPath == "" {
		errs = append(errs, cfgerr.At(errors.New("is required: the casbin policy (.csv) file"), "policy_path"))
	}
	return errors.Join(errs...)
}

// Files lists the model and policy files, whose change triggers a reload.
func (c *CasbinConfig) Files() []string { return []string{c.ModelPath, c.PolicyPath} }

// casbinRequestFields are the request values Decide passes, in order.
var casbinRequestFields = []string{"account", "type", "name", "service", "ip", "action", "labels"}

// Casbin decides scopes with a casbin enforcer, as docker_auth's
// casbin_authz does. It is safe for concurrent use.
type Casbin struct {
	e *casbin.SyncedEnforcer
}

// NewCasbin reads the model and the policy named by cfg. Problems are placed
// at the model_path or policy_path key.
func NewCasbin(cfg CasbinConfig) (*Casbin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// casbin reports a missing file only as a failure to parse it.
	for _, f := range []struct{ key, path string }{{"model_path", cfg.ModelPath}, {"policy_path", cfg.PolicyPath}} {
		if _, err := os.Stat(f.path); err != nil {
			return nil, cfgerr.At(fmt.Errorf("casbin_authz: %w", err), f.key)
		}
	}
	m, err := model.NewModelFromFile(cfg.ModelPath)
	if err != nil {
		return nil, cfgerr.At(fmt.Errorf("casbin_authz: model %s: %v", cfg.ModelPath, firstLine(err)), "model_path")
	}
	var n int
	if r := m["r"]["r"]; r != nil {
		n = len(r.Tokens)
	}
	if n != len(casbinRequestFields) {
		return nil, cfgerr.At(fmt.Errorf("casbin_authz: model %s: request_definition has %d fields, want %d (%s), the values each action is enforced with",
			cfg.ModelPath, n, len(casbinRequestFields), strings.Join(casbinRequestFields, ", ")), "model_path")
	}
	// casbin's own functions cannot be replaced, only renamed in the
	// matcher.
	for _, ast := range m["m"] {
		ast.Value = ipMatchCall.ReplaceAllString(ast.Value, "${1}ipMatchOrNone(")
	}
	e, err := casbin.NewSyncedEnforcer(m, fileadapter.NewAdapter(cfg.PolicyPath))
	if err != nil {
		return nil, cfgerr.At(fmt.Errorf("casbin_authz: policy %s: %v", cfg.PolicyPath, firstLine(err)), "policy_path")
	}
	e.AddFunction("labelMatch", labelMatchFunc)
	e.AddFunction("ipMatchOrNone", ipMatchFunc)
	if err := checkPolicyLabels(e); err != nil {
		return nil, cfgerr.At(fmt.Errorf("casbin_authz: policy %s: %w", cfg.PolicyPath, err), "policy_path")
	}
	return &Casbin{e: e}, nil
}

// Decide enforces each requested action; the granted ones are those the
// policy allows. A scope with at least one granted action is matched (Rule
// 0: casbin has no rule numbers); one with none is not, so the next
// authorizer is asked and, casbin being the last, the scope is denied, as in
// docker_auth. err is set when casbin could not evaluate the model.
func (c *Casbin) Decide(r *Request) (Decision, error) {
	none := Decision{Rule: -1, Actions: []string{}}
	labels, err := json.Marshal(r.Labels)
	if err != nil {
		return none, fmt.Errorf("casbin_authz: labels: %w", err)
	}
	ip := ""
	if r.IP.IsValid() {
		ip = r.IP.Unmap().String()
	}
	granted := make([]string, 0, len(r.Actions))
	for _, action := range r.Actions {
		ok, err := c.e.Enforce(r.Account, r.Type, r.Name, r.Service, ip, action, string(labels))
		if err != nil {
			return none, fmt.Errorf("casbin_authz: %s", firstLine(err))
		}
		if ok {
			granted = append(granted, action)
		}
	}
	if len(granted) == 0 {
		return none, nil
	}
	slices.Sort(granted)
	return Decision{Matched: true, Rule: 0, Actions: slices.Compact(granted)}, nil
}

// labelMatchFunc is labelMatch(request labels, policy labels) for casbin
// matchers.
func labelMatchFunc(args ...any) (any, error) {
	if len(args) != 2 {
		return false, fmt.Errorf("labelMatch: want 2 arguments, got %d", len(args))
	}
	have, ok1 := args[0].(string)
	want, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return false, errors.New("labelMatch: arguments must be strings")
	}
	// docker_auth reads labels that are not JSON as none.
	var h map[string][]string
	_ = json.Unmarshal([]byte(have), &h)
	w, ok := policyLabels(want)
	if !ok {
		// docker_auth reads them as "no constraint", so a typo in the
		// policy would grant to everybody; NewCasbin refuses such a
		// policy, and this keeps the row from matching anyone in a model
		// the load-time check cannot follow.
		return false, nil
	}
	return labelMatch(h, w), nil
}

// policyLabels parses a policy's labels column: JSON like {"team":["a"]};
// empty or null means no constraint. ok is false for anything else.
func policyLabels(s string) (labels map[string][]string, ok bool) {
	if strings.TrimSpace(s) == "" {
		return nil, true
	}
	if err := json.Unmarshal([]byte(s), &labels); err != nil {
		return nil, false
	}
	return labels, true
}

// labelMatch reports whether have holds every value of every label of want.
func labelMatch(have, want map[string][]string) bool {
	for label, values := range want {
		for _, v := range values {
			if !slices.Contains(have[label], v) {
				return false
			}
		}
	}
	return true
}

// ipMatchCall finds calls of casbin's ipMatch in a matcher.
var ipMatchCall = regexp.MustCompile(`(^|[^\w.])ipMatch\(`)

// ipMatchFunc replaces casbin's ipMatch in matchers. It is the same,
// except that a request without a client address (Gatehouse on a unix
// socket) matches no policy IP instead of failing the evaluation: as in
// the static acl, where a rule constrained by ip does not match then.
func ipMatchFunc(args ...any) (any, error) {
	if len(args) == 2 {
		if ip, ok := args[0].(string); ok && net.ParseIP(ip) == nil {
			return false, nil
		}
	}
	return util.IPMatchFunc(args...)
}

// labelMatchCall finds labelMatch(r.X, p.Y) in a matcher (casbin writes
// r.X as r_X).
var labelMatchCall = regexp.MustCompile(`labelMatch\(\s*r[._]\w+\s*,\s*(p[._]\w+)\s*\)`)

// checkPolicyLabels refuses policy rows whose labels column, as the model's
// matcher passes it to labelMatch, is not labels JSON.
func checkPolicyLabels(e *casbin.SyncedEnforcer) error {
	m := e.GetModel()
	matcher := m["m"]["m"].Value
	p, ok := m["p"]["p"]
	if !ok {
		return nil
	}
	var errs []error
	for _, call := range labelMatchCall.FindAllStringSubmatch(matcher, -1) {
		col := slices.Index(p.Tokens, strings.Replace(call[1], ".", "_", 1))
		if col < 0 {
			continue
		}
		for i, rule := range p.Policy {
			if col < len(rule) {
				if _, ok := policyLabels(rule[col]); !ok {
					errs = append(errs, fmt.Errorf("p rule %d (%s): labels %q are not JSON like {\"team\":[\"a\"]}", i+1, strings.Join(rule, ", "), rule[col]))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// firstLine drops what follows the first line of casbin's message (a
// panic's stack trace).
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
