package acl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
	"github.com/gatehouse/gatehouse/internal/sqlconn"
)

// XormConfig is the `acl_xorm:` section: ACL rules kept in a SQL table,
// loaded whole, sorted by seq, and reloaded every cache_ttl.
//
//	acl_xorm:
//	  database_type: mysql         # mysql | postgres | sqlite3
//	  conn_string: "gatehouse:secret@tcp(db:3306)/docker_auth"
//	  cache_ttl: "1m"              # reload period; 0 or unset means 1m
//	  timeout: "5s"                # each load
//	  create_tables: false         # true: create xorm_acl_entry when missing
//
// The table is docker_auth's: xorm_acl_entry(acl_entry, seq), acl_entry
// the JSON of one static `acl:` entry ({"match": {…}, "actions": […],
// "comment": "…"}), seq a unique integer giving its position. See
// docs/sql.md.
type XormConfig struct {
	sqlconn.Config `yaml:",inline"`
	// CacheTTL is the reload period; 0 means DefaultCacheTTL.
	CacheTTL time.Duration `yaml:"cache_ttl"`
}

// Validate checks the section without I/O; problems are placed at their
// keys relative to the section.
func (c *XormConfig) Validate() error {
	errs := []error{c.Config.Validate()}
	if c.CacheTTL < 0 {
		errs = append(errs, cfgerr.At(fmt.Errorf("must be positive, e.g. \"1m\", got %s", c.CacheTTL), "cache_ttl"))
	}
	return errors.Join(errs...)
}

// xormACLQuery reads the whole table, in order.
const xormACLQuery = "SELECT acl_entry, seq FROM xorm_acl_entry ORDER BY seq"

// xormACLDDL creates xorm_acl_entry with portable types, for create_tables.
func xormACLDDL(string) []string {
	return []string{"CREATE TABLE IF NOT EXISTS xorm_acl_entry (acl_entry TEXT, seq BIGINT)"}
}

// XormOption configures NewXorm.
type XormOption func(*Xorm)

// WithXormLogger sets where loads and their failures are logged; the
// default discards.
func WithXormLogger(l *slog.Logger) XormOption {
	return func(x *Xorm) {
		if l != nil {
			x.logger = l
		}
	}
}

// WithXormClock sets the clock of the reload loop (tests).
func WithXormClock(c Clock) XormOption { return func(x *Xorm) { x.clock = c } }

// WithPreviousXorm starts from the ACL prev holds when both read the same
// database, as WithPrevious does for acl_mongo. prev may be nil.
func WithPreviousXorm(prev *Xorm) XormOption {
	return func(x *Xorm) {
		if prev != nil {
			x.inherit(&prev.reloader)
		}
	}
}

// Xorm is the acl_xorm authorizer: the last ACL loaded from xorm_acl_entry,
// reloaded in the background. An invalid row (bad JSON, an unknown key, a
// duplicate seq) and a database that is down leave the last good ACL in
// force, with a log line and LoadFailures counting. It owns its pool and
// its goroutine; Close stops both.
type Xorm struct {
	reloader
	db    *sqlconn.DB
	query string
}

var _ io.Closer = (*Xorm)(nil)

// NewXorm builds the pool, loads the table once (bounded by the timeout; a
// failure is logged, and Decide answers ErrNotLoaded until a later load
// succeeds) and starts the reload loop.
func NewXorm(cfg XormConfig, opts ...XormOption) (*Xorm, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db, err := sqlconn.Open(&cfg.Config, xormACLDDL)
	if err != nil {
		return nil, err
	}
	x := &Xorm{db: db, query: db.Rebind(xormACLQuery)}
	x.reloader = reloader{section: "acl_xorm", source: db.String(), docs: "sql: acl row", item: "row",
		ttl: cfg.CacheTTL, clock: realClock{}, logger: slog.New(slog.DiscardHandler)}
	x.load = x.fetch
	for _, o := range opts {
		o(x)
	}
	x.logger = x.logger.With("database", db.String())
	x.start()
	return x, nil
}

// xormRow is one row of xorm_acl_entry as read.
type xormRow struct {
	seq   int64
	entry []byte
}

// fetch reads every row, sorted by seq by the database.
func (x *Xorm) fetch(ctx context.Context) ([sha256.Size]byte, func() ([]ruleDoc, error), error) {
	ctx, cancel := x.db.WithTimeout(ctx)
	defer cancel()
	if err := x.db.Ready(ctx); err != nil {
		return [sha256.Size]byte{}, nil, err
	}
	rows, err := x.db.QueryContext(ctx, x.query)
	if err != nil {
		return [sha256.Size]byte{}, nil, fmt.Errorf("sql: acl: query: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var (
		read  []xormRow
		items [][]byte
	)
	for rows.Next() {
		var r xormRow
		if err := rows.Scan(&r.entry, &r.seq); err != nil {
			return [sha256.Size]byte{}, nil, fmt.Errorf("sql: acl: read row %d: %w", len(read), err)
		}
		read = append(read, r)
		items = append(items, binary.BigEndian.AppendUint64(slices.Clone(r.entry), uint64(r.seq)))
	}
	if err := rows.Err(); err != nil {
		return [sha256.Size]byte{}, nil, fmt.Errorf("sql: acl: read: %w", err)
	}
	return digestOf(items), func() ([]ruleDoc, error) { return parseXormRows(read) }, nil
}

// parseXormRows checks and decodes the rows and returns them sorted by seq.
// Every problem is reported, each naming its row.
func parseXormRows(rows []xormRow) ([]ruleDoc, error) {
	docs := make([]ruleDoc, 0, len(rows))
	var errs []error
	for _, r := range rows {
		d := ruleDoc{seq: r.seq, name: "seq " + strconv.FormatInt(r.seq, 10)}
		if err := decodeXormEntry(r.entry, &d.rule); err != nil {
			errs = append(errs, fmt.Errorf("sql: acl row %s: %w", d.name, err))
			continue
		}
		docs = append(docs, d)
	}
	errs = append(errs, sortDocs(docs, "sql: acl rows")...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return docs, nil
}

// Fields an acl_entry and its match may have. docker_auth's xorm wrote the
// entry's keys capitalized (Match, Actions, Comment), so those are matched
// without regard to case; anything else is an error: a misspelt match key
// would otherwise be ignored and widen the rule to every request.
var (
	xormEntryFields = []string{"match", "actions", "comment"}
	xormMatchFields = []string{"account", "type", "name", "service", "ip", "labels"}
)

// decodeXormEntry decodes one acl_entry JSON text into r, strictly.
func decodeXormEntry(b []byte, r *Rule) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		return errors.New(`acl_entry: want a JSON object {"match": {…}, "actions": […], "comment": "…"}`)
	}
	norm := make(map[string]json.RawMessage, len(top))
	for k, v := range top {
		lk := strings.ToLower(k)
		if !slices.Contains(xormEntryFields, lk) {
			return fmt.Errorf("acl_entry: unknown key %q (known: %v)", k, xormEntryFields)
		}
		if _, dup := norm[lk]; dup {
			return fmt.Errorf("acl_entry: key %q given twice", lk)
		}
		if err := notNull(v, lk); err != nil {
			return err
		}
		norm[lk] = v
	}
	if m, ok := norm["match"]; ok {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(m, &fields); err != nil {
			return errors.New("acl_entry: match: want an object")
		}
		for k, v := range fields {
			if !slices.Contains(xormMatchFields, k) {
				return fmt.Errorf("acl_entry: unknown key %q (known: %v)", "match."+k, xormMatchFields)
			}
			if err := notNull(v, "match."+k); err != nil {
				return err
			}
		}
	}
	canon, err := json.Marshal(norm)
	if err != nil {
		return fmt.Errorf("acl_entry: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(canon))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return fmt.Errorf("acl_entry: %w", err)
	}
	return nil
}

// notNull rejects a JSON null, which would decode as absent and, in a
// match, match every request.
func notNull(v json.RawMessage, key string) error {
	if string(bytes.TrimSpace(v)) != "null" {
		return nil
	}
	if strings.HasPrefix(key, "match.") || key == "match" {
		return fmt.Errorf("acl_entry: %s is null, which would match every request; remove the key or give it a value", key)
	}
	return fmt.Errorf("acl_entry: %s is null; give it a value", key)
}

// String names the database for logs; it never holds credentials.
func (x *Xorm) String() string { return x.db.String() }

// Close stops the reload loop, waits for it, and closes the pool. It is
// safe to call more than once.
func (x *Xorm) Close() error { return x.shutdown(x.db.Close) }
