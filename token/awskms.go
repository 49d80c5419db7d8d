package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// kmsKeySpec is what Gatehouse needs to know of a KMS key spec it accepts.
type kmsKeySpec struct {
	alg   types.SigningAlgorithmSpec // the one KMS algorithm used with it
	hash  crypto.Hash                // the digest it signs
	curve elliptic.Curve             // nil for RSA
}

// kmsKeySpecs are the key specs registries can verify: ECDSA on the NIST
// curves (ES256/384/512) and RSA with PKCS #1 v1.5 and SHA-256 (RS256).
var kmsKeySpecs = map[types.KeySpec]kmsKeySpec{
	types.KeySpecEccNistP256: {types.SigningAlgorithmSpecEcdsaSha256, crypto.SHA256, elliptic.P256()},
	types.KeySpecEccNistP384: {types.SigningAlgorithmSpecEcdsaSha384, crypto.SHA384, elliptic.P384()},
	types.KeySpecEccNistP521: {types.SigningAlgorithmSpecEcdsaSha512, crypto.SHA512, elliptic.P521()},
	types.KeySpecRsa2048:     {types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, crypto.SHA256, nil},
	types.KeySpecRsa3072:     {types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, crypto.SHA256, nil},
	types.KeySpecRsa4096:     {types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, crypto.SHA256, nil},
}

// kmsKey is a signing key held by AWS KMS (or a KMS-compatible server).
type kmsKey struct {
	client *kms.Client
	arn    string // the key's ARN, resolved from an alias at open
	pub    crypto.PublicKey
	spec   kmsKeySpec
}

var _ contextSigner = (*kmsKey)(nil)

// openAWSKMS opens an awskms: key reference: it loads credentials from the
// SDK's default chain (environment, shared files, web identity, instance
// role), asks KMS for the public key and checks the key can sign tokens.
// An alias is resolved here: the key signs by its ARN until the next load.
func openAWSKMS(ctx context.Context, ref string) (*externalKey, error) {
	r, err := parseAWSKMSRef(ref)
	if err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) (*externalKey, error) {
		return nil, fmt.Errorf("token: key %s: "+format, append([]any{r.shown()}, args...)...)
	}
	var opts []func(*awsconfig.LoadOptions) error
	if r.region != "" {
		opts = append(opts, awsconfig.WithRegion(r.region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fail("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return fail("no AWS region: give region= in the reference, a key ARN, or set AWS_REGION")
	}
	// A transport of its own (with AWS_CA_BUNDLE applied, as the SDK's),
	// so that Close can drop its connections when a reload replaces the key.
	closeIdle := func() {}
	b, ok := cfg.HTTPClient.(*awshttp.BuildableClient)
	if cfg.HTTPClient == nil {
		b, ok = awshttp.NewBuildableClient(), true
	}
	if ok {
		tr := b.GetTransport()
		tr.MaxIdleConnsPerHost = 32 // token requests sign concurrently
		cfg.HTTPClient = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		closeIdle = tr.CloseIdleConnections
	}
	fail = func(format string, args ...any) (*externalKey, error) {
		closeIdle()
		return nil, fmt.Errorf("token: key %s: "+format, append([]any{r.shown()}, args...)...)
	}
	client := kms.NewFromConfig(cfg, func(o *kms.Options) {
		// key_retries is the one retry policy; signRemote bounds each call.
		o.Retryer = aws.NopRetryer{}
		if r.endpoint != "" {
			o.BaseEndpoint = aws.String(r.endpoint)
		}
	})
	out, err := client.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(r.key)})
	if err != nil {
		return fail("getting the public key: %w", err)
	}
	arn := aws.ToString(out.KeyId)
	if out.KeyUsage != types.KeyUsageTypeSignVerify {
		return fail("key usage is %s; a token-signing key needs SIGN_VERIFY (aws kms create-key --key-usage SIGN_VERIFY --key-spec ECC_NIST_P256)", out.KeyUsage)
	}
	spec, ok := kmsKeySpecs[out.KeySpec]
	if !ok {
		return fail("key spec %s cannot sign tokens registries verify; use ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, RSA_2048, RSA_3072 or RSA_4096", out.KeySpec)
	}
	if len(out.SigningAlgorithms) > 0 && !slices.Contains(out.SigningAlgorithms, spec.alg) {
		return fail("key spec %s does not offer %s", out.KeySpec, spec.alg)
	}
	pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
	if err != nil {
		return fail("parsing the public key: %w", err)
	}
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		ok = spec.curve != nil && p.Curve == spec.curve
	case *rsa.PublicKey:
		ok = spec.curve == nil
	default:
		ok = false
	}
	if !ok {
		return fail("the public key (%T) does not match key spec %s", pub, out.KeySpec)
	}
	name := "awskms:" + arn
	if r.alias {
		name += " (" + r.key + ")"
	}
	return &externalKey{
		signer: &kmsKey{client: client, arn: arn, pub: pub, spec: spec},
		kind:   "awskms",
		name:   name,
		close:  func() error { closeIdle(); return nil },
	}, nil
}

// Public returns the public key fetched when the key was opened.
func (k *kmsKey) Public() crypto.PublicKey { return k.pub }

// Sign signs digest, bounded by DefaultKeyTimeout. Tokens are signed with
// SignContext; Sign serves x509.CreateCertificate.
func (k *kmsKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultKeyTimeout)
	defer cancel()
	return k.SignContext(ctx, digest, opts)
}

// SignContext asks KMS to sign digest, a hash made by opts.HashFunc(),
// which must be the key's: RSA keys sign PKCS #1 v1.5 signatures of
// SHA-256 digests, ECDSA keys ASN.1 signatures of the curve's hash.
func (k *kmsKey) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, pss := opts.(*rsa.PSSOptions); pss || opts.HashFunc() != k.spec.hash {
		return nil, fmt.Errorf("token: awskms key %s signs %s digests with %s only", k.arn, k.spec.hash, k.spec.alg)
	}
	if len(digest) != k.spec.hash.Size() {
		return nil, errors.New("token: awskms: digest length does not match its hash")
	}
	out, err := k.client.Sign(ctx, &kms.SignInput{
		KeyId:            aws.String(k.arn),
		Message:          digest,
		MessageType:      types.MessageTypeDigest,
		SigningAlgorithm: k.spec.alg,
	})
	if err != nil {
		if refusedByKMS(err) {
			err = fmt.Errorf("%w: %w", errKeyRefused, err)
		}
		return nil, fmt.Errorf("token: awskms: signing with %s: %w", k.arn, err)
	}
	return out.Signature, nil
}

// refusedByKMS reports whether KMS refused to sign with the key for a
// reason a retry cannot change: the key is disabled, pending deletion or
// gone, its usage does not allow signing, or the caller may not use it.
// Throttling, KMS's internal errors and a key store that is not reachable
// for the moment are worth a retry.
func refusedByKMS(err error) bool {
	var (
		disabled *types.DisabledException
		state    *types.KMSInvalidStateException
		notFound *types.NotFoundException
		usage    *types.InvalidKeyUsageException
	)
	if errors.As(err, &disabled) || errors.As(err, &state) || errors.As(err, &notFound) || errors.As(err, &usage) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "AccessDeniedException"
}
