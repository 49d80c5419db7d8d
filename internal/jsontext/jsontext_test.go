package jsontext

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

// encodingJSON is s as encoding/json writes it with HTML escaping off.
func encodingJSON(t testing.TB, s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// slogJSON is s as slog's JSON handler writes a string attribute value.
func slogJSON(t testing.TB, s string) []byte {
	var b bytes.Buffer
	r := slog.NewRecord(time.Time{}, slog.LevelInfo, "", 0)
	r.AddAttrs(slog.String("k", s))
	if err := slog.NewJSONHandler(&b, nil).Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	// The zero time is left out: the line is {"level":"INFO","msg":"","k":VALUE}.
	line := bytes.TrimSuffix(b.Bytes(), []byte("}\n"))
	prefix := []byte(`{"level":"INFO","msg":"","k":`)
	if !bytes.HasPrefix(line, prefix) {
		t.Fatalf("unexpected slog line %q", b.Bytes())
	}
	return line[len(prefix):]
}

var seeds = []string{"", "plain", "\"\\", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "<>&", "\u2028\u2029", "é😀",
	"\xff\xfe", "\xc3\x28", "\xed\xa0\x80", "a\xe2\x80"}

func TestAppendStringMatchesTheStandardLibrary(t *testing.T) {
	for _, s := range seeds {
		if got, want := AppendString(nil, s), encodingJSON(t, s); !bytes.Equal(got, want) {
			t.Errorf("AppendString(%q) = %s, encoding/json gives %s", s, got, want)
		}
		if got, want := AppendSlogString(nil, s), slogJSON(t, s); !bytes.Equal(got, want) {
			t.Errorf("AppendSlogString(%q) = %s, slog gives %s", s, got, want)
		}
	}
	// The two differ only where slog writes \b and \f long.
	if got := string(AppendSlogString(nil, "\b\f")); got != `"\u0008\u000c"` {
		t.Errorf(`AppendSlogString("\b\f") = %s`, got)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := AppendString(nil, s), encodingJSON(t, s); !bytes.Equal(got, want) {
			t.Errorf("AppendString(%q) = %s, encoding/json gives %s", s, got, want)
		}
		if got, want := AppendSlogString(nil, s), slogJSON(t, s); !bytes.Equal(got, want) {
			t.Errorf("AppendSlogString(%q) = %s, slog gives %s", s, got, want)
		}
	})
}
