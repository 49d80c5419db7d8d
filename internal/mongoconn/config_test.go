package mongoconn

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// keys returns the key paths of the problems in err, rendered.
func keys(err error) []string {
	var out []string
	for _, e := range cfgerr.Flatten(err) {
		var ce *cfgerr.Error
		if errors.As(e, &ce) {
			out = append(out, cfgerr.Key(ce.Path))
		} else {
			out = append(out, "?"+e.Error())
		}
	}
	slices.Sort(out)
	return out
}

func TestValidate(t *testing.T) {
	dial := func(f func(d *DialInfo)) *Config {
		d := &DialInfo{Addrs: []string{"localhost"}, Database: "docker_auth"}
		if f != nil {
			f(d)
		}
		return &Config{DialInfo: d, Collection: "users"}
	}
	tests := []struct {
		name string
		cfg  *Config
		want []string // key paths with a problem
		msg  string   // a substring of the message, when set
	}{
		{name: "minimal dial_info", cfg: dial(nil)},
		{name: "docker_auth reference", cfg: dial(func(d *DialInfo) {
			d.Addrs = []string{"mongo1:27017", "[::1]:27018"}
			d.Timeout = 10 * time.Second
			d.Username, d.PasswordFile, d.EnableTLS = "auth", "/run/pw", true
		})},
		{name: "inline password", cfg: dial(func(d *DialInfo) { d.Username, d.Password = "u", "p" })},
		{name: "uri", cfg: &Config{URI: "mongodb://h1,h2:27018/docker_auth?replicaSet=rs0&timeoutMS=500", Collection: "users"}},
		{name: "srv uri is not looked up", cfg: &Config{URI: "mongodb+srv://cluster.example.invalid/docker_auth", Collection: "users"}},
		{name: "uri with password file", cfg: &Config{URI: "mongodb://gatehouse@h/db", PasswordFile: "/run/pw", Collection: "c"}},

		{name: "neither", cfg: &Config{Collection: "users"}, want: []string{"dial_info"}},
		{name: "both", cfg: &Config{DialInfo: &DialInfo{Addrs: []string{"h"}, Database: "d"}, URI: "mongodb://h/d", Collection: "c"}, want: []string{"uri"}},
		{name: "no collection", cfg: &Config{URI: "mongodb://h/d"}, want: []string{"collection"}},
		{name: "no addrs", cfg: dial(func(d *DialInfo) { d.Addrs = nil }), want: []string{"dial_info.addrs"}},
		{name: "bad addr", cfg: dial(func(d *DialInfo) { d.Addrs = []string{"ok", "h:notaport", " spaced"} }),
			want: []string{"dial_info.addrs[1]", "dial_info.addrs[2]"}},
		{name: "bare ipv6", cfg: dial(func(d *DialInfo) { d.Addrs = []string{"::1"} }), want: []string{"dial_info.addrs[0]"}, msg: "[::1]"},
		{name: "negative timeout", cfg: dial(func(d *DialInfo) { d.Timeout = -time.Second }), want: []string{"dial_info.timeout"}},
		{name: "no database", cfg: dial(func(d *DialInfo) { d.Database = "" }), want: []string{"dial_info.database"}},
		{name: "password twice", cfg: dial(func(d *DialInfo) { d.Username, d.Password, d.PasswordFile = "u", "p", "/f" }),
			want: []string{"dial_info.password_file"}},
		{name: "password without username", cfg: dial(func(d *DialInfo) { d.PasswordFile = "/f" }), want: []string{"dial_info.username"}},
		{name: "unknown mechanism", cfg: dial(func(d *DialInfo) { d.Username, d.Mechanism = "u", "MONGODB-CR" }),
			want: []string{"dial_info.mechanism"}},
		{name: "source without username", cfg: dial(func(d *DialInfo) { d.Source = "admin" }), want: []string{"dial_info.source"}},
		{name: "ca_file without tls", cfg: dial(func(d *DialInfo) { d.CAFile = "/ca.pem" }), want: []string{"dial_info.ca_file"}},
		{name: "password_file beside dial_info", cfg: &Config{DialInfo: &DialInfo{Addrs: []string{"h"}, Database: "d"}, PasswordFile: "/f", Collection: "c"},
			want: []string{"password_file"}},
		{name: "uri scheme", cfg: &Config{URI: "http://h/d", Collection: "c"}, want: []string{"uri"}},
		{name: "uri without database", cfg: &Config{URI: "mongodb://h:27017/", Collection: "c"}, want: []string{"uri"}, msg: "database"},
		{name: "uri password and password_file", cfg: &Config{URI: "mongodb://u:secret@h/d", PasswordFile: "/f", Collection: "c"},
			want: []string{"uri"}, msg: "one place"},
		{name: "password_file without uri user", cfg: &Config{URI: "mongodb://h/d", PasswordFile: "/f", Collection: "c"},
			want: []string{"uri"}, msg: "user name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if got := keys(err); !slices.Equal(got, tc.want) {
				t.Fatalf("problems at %v, want %v: %v", got, tc.want, err)
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error quotes the uri's password: %v", err)
			}
		})
	}
}

func TestTimeoutAndDatabase(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		timeout time.Duration
		db      string
	}{
		{"dial_info default", Config{DialInfo: &DialInfo{Database: "a"}}, DefaultTimeout, "a"},
		{"dial_info timeout", Config{DialInfo: &DialInfo{Database: "a", Timeout: 3 * time.Second}}, 3 * time.Second, "a"},
		{"uri default", Config{URI: "mongodb://h/b"}, DefaultTimeout, "b"},
		{"uri timeoutMS", Config{URI: "mongodb://h/b?timeoutMS=1500"}, 1500 * time.Millisecond, "b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.Timeout(); got != tc.timeout {
				t.Errorf("Timeout() = %s, want %s", got, tc.timeout)
			}
			if got := tc.cfg.Database(); got != tc.db {
				t.Errorf("Database() = %q, want %q", got, tc.db)
			}
		})
	}
}

// TestOpenFiles checks what Open reads: the password file (trimmed) and the
// CA file, with problems placed at their keys.
func TestOpenFiles(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name     string
		cfg      Config
		wantKey  string // "" for success
		wantPass string
	}{
		{name: "dial_info password file", cfg: Config{DialInfo: &DialInfo{Addrs: []string{"h"}, Database: "d", Username: "u", PasswordFile: pwFile}, Collection: "c"}, wantPass: "s3cret"},
		{name: "uri password file", cfg: Config{URI: "mongodb://u@h/d", PasswordFile: pwFile, Collection: "c"}, wantPass: "s3cret"},
		{name: "missing password file", cfg: Config{DialInfo: &DialInfo{Addrs: []string{"h"}, Database: "d", Username: "u", PasswordFile: missing}, Collection: "c"}, wantKey: "dial_info.password_file"},
		{name: "empty password file", cfg: Config{URI: "mongodb://u@h/d", PasswordFile: empty, Collection: "c"}, wantKey: "password_file"},
		{name: "missing ca file", cfg: Config{DialInfo: &DialInfo{Addrs: []string{"h"}, Database: "d", EnableTLS: true, CAFile: missing}, Collection: "c"}, wantKey: "dial_info.ca_file"},
		{name: "ca file without PEM", cfg: Config{DialInfo: &DialInfo{Addrs: []string{"h"}, Database: "d", EnableTLS: true, CAFile: pwFile}, Collection: "c"}, wantKey: "dial_info.ca_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := clientOptions(&tc.cfg)
			if tc.wantKey != "" {
				if got := keys(err); !slices.Equal(got, []string{tc.wantKey}) {
					t.Fatalf("problems at %v, want [%s]: %v", got, tc.wantKey, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opts.Auth == nil || opts.Auth.Password != tc.wantPass || !opts.Auth.PasswordSet {
				t.Errorf("credential = %+v, want password %q", opts.Auth, tc.wantPass)
			}
		})
	}
}

func TestFiles(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"none", Config{DialInfo: &DialInfo{}}, nil},
		{"dial_info", Config{DialInfo: &DialInfo{PasswordFile: "/pw", CAFile: "/ca"}}, []string{"/pw", "/ca"}},
		{"uri", Config{URI: "mongodb://u@h/d?tls=true&tlsCAFile=/uca", PasswordFile: "/upw"}, []string{"/upw", "/uca"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.Files(); !slices.Equal(got, tc.want) {
				t.Errorf("Files() = %v, want %v", got, tc.want)
			}
		})
	}
}
