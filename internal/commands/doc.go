// Package commands holds gatehouse's one-shot commands: validate (builds a
// configuration exactly as the server does, through daemon.Build), check
// (decides scopes with the server's own ACL code), token (access tokens:
// create, revoke, inspect), certificate, hash and version.
// Neither validate nor check listens or writes a file.
// Each takes its arguments after the command name and its output writers,
// and returns the process exit code: 0 on success, 1 when the command
// failed, 2 for a bad command line.
//
// Import rules: commands imports internal/daemon, auth/ and config/; only
// package main (and tests) import commands.
package commands

// Usage is the command-line summary, printed by "gatehouse help" and after
// a bad command line.
const Usage = `usage:
  gatehouse CONFIG               run the server with the configuration file CONFIG
  gatehouse serve CONFIG         the same
  gatehouse validate CONFIG      check CONFIG (writes nothing): exit 0, or print every problem with its line and exit 1
  gatehouse check CONFIG --account A [--label KEY=VALUE ...] [--ip IP] [--service S] SCOPE...
                                 print, for each scope, the granted actions and the ACL rule that decided
  gatehouse token create CONFIG --owner ACCOUNT --name NAME --scope PATTERN... [--ttl 30d]
                                 mint an access token for a machine (printed once; docs/access-tokens.md)
  gatehouse token revoke TOKEN|ID   print the line that revokes it (access_tokens.revoked_file)
  gatehouse token inspect CONFIG TOKEN   what a token is and what it grants now (no secrets)
  gatehouse certificate KEY OUT [--cn NAME] [--days 365]
                                 write a self-signed certificate for a signing key: a PEM file or a key
                                 reference (awskms:…, pkcs11:…), signed by the key service (docs/keys.md)
  gatehouse hash [-cost N]       read a password on stdin and print a bcrypt hash for users:
  gatehouse version              print the version
`
