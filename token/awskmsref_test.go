package token

import (
	"strings"
	"testing"
)

func TestParseAWSKMSRef(t *testing.T) {
	const id = "0d9a3ee1-6b3c-4d2f-9c1e-2f7f4b8a5c10"
	const arn = "arn:aws:kms:eu-west-2:111122223333:key/" + id
	tests := []struct {
		name    string
		ref     string
		want    awsKMSRef
		wantErr string // "" for success
	}{
		{name: "key id", ref: "awskms:///" + id, want: awsKMSRef{key: id}},
		{name: "key id region endpoint", ref: "awskms:///" + id + "?region=us-east-1&endpoint=https://kms.example.com:8443",
			want: awsKMSRef{key: id, region: "us-east-1", endpoint: "https://kms.example.com:8443"}},
		{name: "escaped endpoint", ref: "awskms:///" + id + "?endpoint=http%3A%2F%2F127.0.0.1%3A4566",
			want: awsKMSRef{key: id, endpoint: "http://127.0.0.1:4566"}},
		{name: "multi-region key id", ref: "awskms:///mrk-1234abcd12ab34cd56ef1234567890ab", want: awsKMSRef{key: "mrk-1234abcd12ab34cd56ef1234567890ab"}},
		{name: "key ARN gives the region", ref: "awskms:///" + arn, want: awsKMSRef{key: arn, region: "eu-west-2"}},
		{name: "key ARN with the same region", ref: "awskms:///" + arn + "?region=eu-west-2", want: awsKMSRef{key: arn, region: "eu-west-2"}},
		{name: "GovCloud ARN", ref: "awskms:///arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/" + id,
			want: awsKMSRef{key: "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/" + id, region: "us-gov-west-1"}},
		{name: "alias", ref: "awskms:///alias/gatehouse/token-signing", want: awsKMSRef{key: "alias/gatehouse/token-signing", alias: true}},
		{name: "alias ARN", ref: "awskms:///arn:aws:kms:eu-west-2:111122223333:alias/token_1",
			want: awsKMSRef{key: "arn:aws:kms:eu-west-2:111122223333:alias/token_1", alias: true, region: "eu-west-2"}},

		{name: "host", ref: "awskms://kms.eu-west-2.amazonaws.com/" + id, wantErr: "the host must be empty"},
		{name: "user info", ref: "awskms://AKID:secret@/" + id, wantErr: "the host must be empty"},
		{name: "two slashes", ref: "awskms://" + id, wantErr: "the host must be empty"},
		{name: "unparsable with credentials", ref: "awskms://AKID:secret%zz@/" + id, wantErr: "not a URI"},
		{name: "one slash", ref: "awskms:/" + id, wantErr: "must start with awskms:///"},
		{name: "opaque", ref: "awskms:" + id, wantErr: "must start with awskms:///"},
		{name: "empty key", ref: "awskms:///", wantErr: "the key is empty"},
		{name: "empty key with query", ref: "awskms:///?region=eu-west-2", wantErr: "the key is empty"},
		{name: "malformed key id", ref: "awskms:///not a key", wantErr: "malformed key id"},
		{name: "key id with a slash", ref: "awskms:///" + id + "/x", wantErr: "malformed key id"},
		{name: "ARN of another service", ref: "awskms:///arn:aws:s3:eu-west-2:111122223333:key/" + id, wantErr: "malformed KMS ARN"},
		{name: "ARN without account", ref: "awskms:///arn:aws:kms:eu-west-2::key/" + id, wantErr: "malformed KMS ARN"},
		{name: "ARN of a grant", ref: "awskms:///arn:aws:kms:eu-west-2:111122223333:grant/x", wantErr: "key/ID or alias/NAME"},
		{name: "empty alias", ref: "awskms:///alias/", wantErr: "malformed alias"},
		{name: "alias with a colon", ref: "awskms:///alias/a:b", wantErr: "malformed alias"},
		{name: "region differs from the ARN", ref: "awskms:///" + arn + "?region=us-east-1", wantErr: "differs from the region in the ARN"},
		{name: "malformed region", ref: "awskms:///" + id + "?region=EU_WEST", wantErr: "malformed region"},
		{name: "empty region", ref: "awskms:///" + id + "?region=", wantErr: "malformed region"},
		{name: "unknown parameter", ref: "awskms:///" + id + "?profile=prod", wantErr: `unknown parameter "profile"`},
		{name: "repeated parameter", ref: "awskms:///" + id + "?region=eu-west-1&region=eu-west-2", wantErr: `parameter "region" is given 2 times`},
		{name: "ARN with a 4-digit account", ref: "awskms:///arn:aws:kms:eu-west-2:1111:key/" + id, wantErr: "malformed KMS ARN"},
		{name: "ARN with a malformed partition", ref: "awskms:///arn:AWS@x:kms:eu-west-2:111122223333:key/" + id, wantErr: "malformed KMS ARN"},
		{name: "endpoint after a second ?", ref: "awskms:///" + id + "?region=eu-west-1?endpoint=https://AKID:hunter2@kms.example.com",
			wantErr: "malformed region (not shown)"},
		{name: "endpoint without its name", ref: "awskms:///" + id + "?https://AKID:hunter2@kms.example.com", wantErr: "unknown parameter (not shown)"},
		{name: "endpoint without its name, twice", ref: "awskms:///" + id + "?https://AKID:hunter2@kms.example.com&https://AKID:hunter2@kms.example.com",
			wantErr: "parameter (not shown) is given 2 times"},
		{name: "user information without //", ref: "awskms:AKID:hunter2@kms.example.com/" + id, wantErr: "token: key reference awskms:…@kms.example.com/" + id + ": must start with awskms:///"},
		{name: "user information in the key", ref: "awskms:///AKID:hunter2@kms.example.com/" + id, wantErr: "token: key reference awskms:…@kms.example.com/" + id + ": malformed key id"},
		{name: "malformed query", ref: "awskms:///" + id + "?region=%zz", wantErr: "malformed query"},
		{name: "fragment", ref: "awskms:///" + id + "#x", wantErr: "fragment"},
		{name: "endpoint without scheme", ref: "awskms:///" + id + "?endpoint=127.0.0.1:4566", wantErr: "http:// or https://"},
		{name: "endpoint of another scheme", ref: "awskms:///" + id + "?endpoint=ftp://kms.example.com", wantErr: "http:// or https://"},
		{name: "endpoint without host", ref: "awskms:///" + id + "?endpoint=https://", wantErr: "endpoint has no host"},
		{name: "endpoint with credentials", ref: "awskms:///" + id + "?endpoint=https://AKID:hunter2@kms.example.com", wantErr: "must not contain user information"},
		{name: "endpoint with a query", ref: "awskms:///" + id + "?endpoint=https://kms.example.com/%3Fa%3Db", wantErr: "query or fragment"},
		{name: "endpoint with a bad port", ref: "awskms:///" + id + "?endpoint=https://kms.example.com:x1", wantErr: "malformed endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAWSKMSRef(tt.ref)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("parseAWSKMSRef(%q) = %+v, %v; want %+v", tt.ref, got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseAWSKMSRef(%q) = %+v, want an error containing %q", tt.ref, got, tt.wantErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) || !strings.HasPrefix(msg, "token: key reference awskms:") {
				t.Errorf("error %q does not name the reference and contain %q", msg, tt.wantErr)
			}
			if strings.Contains(msg, "hunter2") || strings.Contains(msg, "secret") {
				t.Errorf("error %q repeats a credential", msg)
			}
		})
	}
}
