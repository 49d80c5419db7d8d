package auth

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/internal/jsontext"
)

// auditRecord is the audit line of an issued token: who asked, what for,
// how each scope was decided. It never holds a password or a token.
type auditRecord struct {
	time          time.Time
	outcome       string
	account       string
	authenticator string
	clientIP      netip.Addr
	grant         string
	clientID      string
	service       string
	decisions     []Decision // one per requested scope, in request order
	refreshIssued bool
	// tokenName and tokenID name the access token used (directly or
	// through a refresh token issued to it); "" otherwise.
	tokenName, tokenID string
	latency            time.Duration
}

// auditMessage is the msg of the audit line.
const auditMessage = "token issued"

// attrs are the record's fields for a slog handler, after time, level and
// msg.
func (a *auditRecord) attrs() []slog.Attr {
	attrs := []slog.Attr{
		slog.String("outcome", a.outcome),
		slog.String("account", a.account),
		slog.String("authenticator", a.authenticator),
		slog.String("client_ip", ipString(a.clientIP)),
		slog.String("grant", a.grant),
		slog.String("client_id", a.clientID),
		slog.String("service", a.service),
		slog.Any("decisions", a.decisions),
		slog.Bool("refresh_token_issued", a.refreshIssued),
	}
	if a.tokenID != "" {
		attrs = append(attrs, slog.String("token_name", a.tokenName), slog.String("token_id", a.tokenID))
	}
	return append(attrs, slog.Duration("latency", a.latency))
}

// appendJSON appends the record as one line, byte for byte what
// slog.JSONHandler writes for slog.Record{Time: a.time, Level: Info,
// Message: auditMessage} with attrs(): top-level strings escaped as slog
// escapes them, the decisions as encoding/json (without HTML escaping)
// marshals them, the latency in nanoseconds. TestAuditJSONMatchesSlog
// holds it to that.
func (a *auditRecord) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = a.time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"`+auditMessage+`","outcome":`...)
	b = jsontext.AppendSlogString(b, a.outcome)
	b = append(b, `,"account":`...)
	b = jsontext.AppendSlogString(b, a.account)
	b = append(b, `,"authenticator":`...)
	b = jsontext.AppendSlogString(b, a.authenticator)
	b = append(b, `,"client_ip":"`...)
	if a.clientIP.IsValid() {
		b = a.clientIP.AppendTo(b)
	}
	b = append(b, `","grant":`...)
	b = jsontext.AppendSlogString(b, a.grant)
	b = append(b, `,"client_id":`...)
	b = jsontext.AppendSlogString(b, a.clientID)
	b = append(b, `,"service":`...)
	b = jsontext.AppendSlogString(b, a.service)
	b = append(b, `,"decisions":[`...)
	for i, d := range a.decisions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"scope":`...)
		b = jsontext.AppendString(b, d.Scope)
		b = append(b, `,"granted":`...)
		b = jsontext.AppendString(b, d.Granted)
		b = append(b, `,"rule":`...)
		b = strconv.AppendInt(b, int64(d.Rule), 10)
		if d.Comment != "" {
			b = append(b, `,"comment":`...)
			b = jsontext.AppendString(b, d.Comment)
		}
		if d.ACL != "" {
			b = append(b, `,"acl":`...)
			b = jsontext.AppendString(b, d.ACL)
		}
		b = append(b, '}')
	}
	b = append(b, `],"refresh_token_issued":`...)
	b = strconv.AppendBool(b, a.refreshIssued)
	if a.tokenID != "" {
		b = append(b, `,"token_name":`...)
		b = jsontext.AppendSlogString(b, a.tokenName)
		b = append(b, `,"token_id":`...)
		b = jsontext.AppendSlogString(b, a.tokenID)
	}
	b = append(b, `,"latency":`...)
	b = strconv.AppendInt(b, int64(a.latency), 10)
	return append(b, "}\n"...)
}

// sizeHint is about the length of the record's line unescaped, so that a
// large one is one allocation rather than a doubling series.
func (a *auditRecord) sizeHint() int {
	n := 384 + len(a.account) + len(a.authenticator) + len(a.clientID) + len(a.service) + len(a.tokenName) + len(a.tokenID)
	for i := range a.decisions {
		d := &a.decisions[i]
		n += 48 + len(d.Scope) + len(d.Granted) + len(d.Comment) + len(d.ACL)
	}
	return n
}

// auditLog writes audit lines: straight to a writer in slog's JSON shape
// when the process logs JSON there (WithJSONAuditLog), else through the
// logger. Either way the logger's level decides whether they are written.
type auditLog struct {
	logger *slog.Logger
	w      io.Writer // nil: through the logger
}

// auditBufPool holds line buffers; an audit line is a few hundred bytes.
var auditBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledAudit is the largest line buffer kept for reuse.
const maxPooledAudit = 16 << 10

// write logs a as one line.
func (l auditLog) write(ctx context.Context, a *auditRecord) {
	if !l.logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	if l.w == nil {
		r := slog.NewRecord(a.time, slog.LevelInfo, auditMessage, 0)
		r.AddAttrs(a.attrs()...)
		_ = l.logger.Handler().Handle(ctx, r)
		return
	}
	bp := auditBufPool.Get().(*[]byte)
	line := a.appendJSON(slices.Grow((*bp)[:0], a.sizeHint()))
	_, _ = l.w.Write(line)
	if cap(line) <= maxPooledAudit {
		*bp = line
		auditBufPool.Put(bp)
	}
}
