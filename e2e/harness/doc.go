// Package harness runs Gatehouse end to end against a real Docker registry
// and a real registry client (go-containerregistry).
//
// It imports neither registry version: the test packages e2e/registryv2
// (github.com/docker/distribution v2.8.3) and e2e/registryv3
// (github.com/distribution/distribution/v3) each hand it a [RegistryFactory]
// that builds their registry's http.Handler, because the two versions cannot
// be linked into one test binary (both register /debug/health on
// http.DefaultServeMux in init).
//
// Every environment is fresh: a signing key written to t.TempDir(), an
// auth_config.yml in docker_auth's format, Gatehouse serving on a loopback
// listener with the realm http://localhost:PORT/auth (go-containerregistry
// refuses loopback IP literals as realms), and the registry serving on
// another loopback listener addressed as localhost:PORT (plain HTTP). When a
// test fails, the environment prints every exchange both servers saw, the
// tokens Gatehouse issued (decoded) and Gatehouse's log.
//
// [RunMatrix] is the interop matrix (docs/compatibility.md): registry trust
// configurations and token headers × key types × clients ([MatrixClients]:
// go-containerregistry with a password and with a refresh token, containerd's
// OAuth2 sequence, skopeo, and `docker login` by the CLI and by the engine;
// and helm, oras and podman, which push to nested paths and are refused
// bob's, with each registry's default token header).
//
// [RunAWSKMSPushPull] and [RunPKCS11PushPull] (build tag pkcs11) push and
// pull with tokens signed by a key a key service holds (local-kms,
// SoftHSM2), under each [KeyHeader] the registry takes.
package harness
