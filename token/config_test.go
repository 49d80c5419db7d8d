package token

import (
	"testing"
	"time"
)

func validConfig() Config {
	return Config{Issuer: "Acme auth server", Expiration: 900, Certificate: "/ssl/token.pem", Key: "/ssl/token.key"}
}

func TestValidate(t *testing.T) {
	f := false
	tests := []struct {
		name      string
		modify    func(*Config)
		wantPaths []string
		wantMsg   string // substring of the joined message
		wantKID   string
		wantX5C   bool
	}{
		{name: "valid minimal", modify: func(*Config) {}, wantKID: KIDLibtrust, wantX5C: true},
		{name: "all keys", modify: func(c *Config) { c.KID = KIDNone; c.X5C = &f; c.GenerateIfMissing = true },
			wantKID: KIDNone, wantX5C: false},
		{name: "expiration exactly 60", modify: func(c *Config) { c.Expiration = 60 }, wantKID: KIDLibtrust, wantX5C: true},
		{name: "kid thumbprint", modify: func(c *Config) { c.KID = KIDThumbprint }, wantKID: KIDThumbprint, wantX5C: true},
		{name: "kid libtrust explicit", modify: func(c *Config) { c.KID = KIDLibtrust }, wantKID: KIDLibtrust, wantX5C: true},
		{name: "disable_legacy_key_id means thumbprint", modify: func(c *Config) { c.DisableLegacyKeyID = true },
			wantKID: KIDThumbprint, wantX5C: true},
		{name: "disable_legacy_key_id with kid thumbprint", modify: func(c *Config) { c.DisableLegacyKeyID = true; c.KID = KIDThumbprint },
			wantKID: KIDThumbprint, wantX5C: true},
		{name: "empty section", modify: func(c *Config) { *c = Config{} },
			wantPaths: []string{"certificate", "expiration", "issuer", "key"}, wantMsg: "expiration is required"},
		{name: "refresh expiration too short", modify: func(c *Config) { c.RefreshExpiration = 30 },
			wantPaths: []string{"refresh_expiration"}, wantMsg: "at least 60 seconds, got 30"},
		{name: "refresh settings without oauth2", modify: func(c *Config) { c.OAuth2 = &f; c.RefreshSecretFile = "/x" },
			wantPaths: []string{"oauth2"}, wantMsg: "need oauth2"},
		{name: "next certificate without next key", modify: func(c *Config) { c.NextCertificate = "/next.pem" },
			wantPaths: []string{"next_certificate"}, wantMsg: "go together"},
		{name: "issuer missing", modify: func(c *Config) { c.Issuer = "" },
			wantPaths: []string{"issuer"}, wantMsg: "issuer is required"},
		{name: "expiration too short", modify: func(c *Config) { c.Expiration = 59 },
			wantPaths: []string{"expiration"}, wantMsg: "at least 60 seconds, got 59"},
		{name: "expiration negative", modify: func(c *Config) { c.Expiration = -900 },
			wantPaths: []string{"expiration"}, wantMsg: "at least 60 seconds"},
		{name: "expiration overflows", modify: func(c *Config) { c.Expiration = 1 << 62 },
			wantPaths: []string{"expiration"}, wantMsg: "too large"},
		{name: "certificate missing", modify: func(c *Config) { c.Certificate = "" },
			wantPaths: []string{"certificate"}, wantMsg: "certificate is required"},
		{name: "key missing", modify: func(c *Config) { c.Key = "" },
			wantPaths: []string{"key"}, wantMsg: "key is required"},
		{name: "kid unknown", modify: func(c *Config) { c.KID = "jwk" },
			wantPaths: []string{"kid"}, wantMsg: `got "jwk"`},
		{name: "disable_legacy_key_id conflicts with kid", modify: func(c *Config) { c.DisableLegacyKeyID = true; c.KID = KIDLibtrust },
			wantPaths: []string{"disable_legacy_key_id"}, wantMsg: "conflicts with kid: libtrust"},
		{name: "disable_legacy_key_id and kid none", modify: func(c *Config) { c.DisableLegacyKeyID = true; c.KID = KIDNone },
			wantPaths: []string{"disable_legacy_key_id"}, wantMsg: "conflicts with kid: none"},
		{name: "key reference needs refresh_secret_file", modify: func(c *Config) { c.Key = "awskms:///alias/token?region=eu-west-1" },
			wantPaths: []string{"refresh_secret_file"}, wantMsg: "key or next_key is held by a key service (awskms)"},
		{name: "key reference with refresh_secret_file", modify: func(c *Config) { c.Key = "pkcs11:token=t;object=k"; c.RefreshSecretFile = "/s" },
			wantKID: KIDLibtrust, wantX5C: true},
		{name: "key reference keeps the secret without oauth2", modify: func(c *Config) { c.Key = "awskms:///k"; c.RefreshSecretFile = "/s"; c.OAuth2 = &f },
			wantKID: KIDLibtrust, wantX5C: true},
		{name: "next_key reference needs refresh_secret_file", modify: func(c *Config) { c.NextKey = "pkcs11:object=k"; c.NextCertificate = "/n.pem" },
			wantPaths: []string{"refresh_secret_file"}, wantMsg: "key or next_key is held by a key service (pkcs11)"},
		{name: "key_timeout without a unit", modify: func(c *Config) { c.KeyTimeout = 2 },
			wantPaths: []string{"key_timeout"}, wantMsg: "with its unit"},
		{name: "key_timeout negative", modify: func(c *Config) { c.KeyTimeout = -time.Second },
			wantPaths: []string{"key_timeout"}, wantMsg: "at least 1ms"},
		{name: "key_retries too many", modify: func(c *Config) { n := 6; c.KeyRetries = &n },
			wantPaths: []string{"key_retries"}, wantMsg: "between 0 and 5, got 6"},
		{name: "key_retries negative", modify: func(c *Config) { n := -1; c.KeyRetries = &n },
			wantPaths: []string{"key_retries"}, wantMsg: "got -1"},
		{name: "disable_legacy_key_id and unknown kid", modify: func(c *Config) { c.DisableLegacyKeyID = true; c.KID = "x" },
			wantPaths: []string{"kid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.modify(&c)
			err := c.Validate()
			if !checkConfigError(t, err, tt.wantPaths, tt.wantMsg) {
				return
			}
			if got := c.kidMode(); got != tt.wantKID {
				t.Errorf("kid mode = %q, want %q", got, tt.wantKID)
			}
			if got := c.x5c(); got != tt.wantX5C {
				t.Errorf("x5c = %v, want %v", got, tt.wantX5C)
			}
		})
	}
}
