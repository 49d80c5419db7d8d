package config

import (
	"slices"
	"strings"
	"testing"
)

// TestFilesSkipKeyReferences: a token key held by a key service is not a
// file the reloader watches; its certificate is.
func TestFilesSkipKeyReferences(t *testing.T) {
	tests := []struct {
		name, key, nextKey string
		want, notWant      []string
	}{
		{name: "file key", key: "/ssl/token.key", want: []string{"/ssl/token.pem", "/ssl/token.key"}},
		{name: "awskms key", key: `"awskms:///alias/token?region=eu-west-1"`,
			want: []string{"/ssl/token.pem", "/ssl/refresh"}, notWant: []string{"awskms:///alias/token?region=eu-west-1"}},
		{name: "awskms next key", key: "/ssl/token.key", nextKey: "awskms:///alias/next",
			want: []string{"/ssl/token.key", "/ssl/next.pem"}, notWant: []string{"awskms:///alias/next"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yml := strings.Replace(base, "key: /ssl/token.key\n", "key: "+tt.key+"\n  refresh_secret_file: /ssl/refresh\n", 1)
			if tt.nextKey != "" {
				yml = strings.Replace(yml, "token:\n", "token:\n  next_certificate: /ssl/next.pem\n  next_key: "+tt.nextKey+"\n", 1)
			}
			c, perr := parse(t, yml)
			if perr != nil {
				t.Fatal(perr)
			}
			files := c.Files()
			for _, f := range tt.want {
				if !slices.Contains(files, f) {
					t.Errorf("Files() = %q lacks %s", files, f)
				}
			}
			for _, f := range tt.notWant {
				if slices.Contains(files, f) {
					t.Errorf("Files() = %q lists the key reference %s", files, f)
				}
			}
		})
	}
}
