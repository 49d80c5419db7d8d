// Package jsontext appends JSON strings the way the standard library's
// encoders write them, for the hand-written encoders of the hot path
// (token claims, the audit line) that must produce the same bytes.
package jsontext

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string exactly as encoding/json does
// with HTML escaping off: '"' and '\\' escaped, control characters as \b,
// \f, \n, \r, \t or \u00XX, U+2028 and U+2029 as \u2028 and \u2029, and each
// byte of invalid UTF-8 replaced by \ufffd.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s, true) }

// AppendSlogString appends s as a JSON string exactly as log/slog's JSON
// handler writes string values: as AppendString, except that \b and \f
// are written \u0008 and \u000c.
func AppendSlogString(dst []byte, s string) []byte { return appendString(dst, s, false) }

func appendString(dst []byte, s string, shortBF bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case shortBF && c == '\b':
				dst = append(dst, '\\', 'b')
			case shortBF && c == '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
