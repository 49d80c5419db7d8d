package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: any file content is loaded or refused with problems that name
// the file (and, for a syntax error, its line), never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(base + "acl:\n  - match: {account: [\n"))
	f.Add([]byte("server: {addr: x}\ntoken: {expiration: soon}\nacl: [{match: {ip: 1.2.3.4/40}}]\n"))
	f.Add([]byte("cache: {ttl: ${env:NOPE}}\nlog: {level: 3}\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("{{{"))
	f.Add([]byte("log: {level: info}\nlog: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("fuzz.yml", data)
		if err == nil {
			return
		}
		var ce *Error
		if !errors.As(err, &ce) || len(ce.Problems) == 0 {
			t.Fatalf("error %T without problems: %v", err, err)
		}
		for _, p := range ce.Problems {
			if p.File != "fuzz.yml" || p.Msg == "" {
				t.Fatalf("problem %+v", p)
			}
			if strings.HasPrefix(p.Msg, "invalid YAML") && p.Line < 1 {
				t.Fatalf("syntax error without its line: %+v", p)
			}
		}
	})
}
