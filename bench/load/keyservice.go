package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/kmstest"
)

// The -keys held by a key service, and the names their rows carry.
const (
	keyKMS     = "kms-p256" // a P-256 key in a KMS API server, a process of its own
	keyHSM     = "hsm-p256" // a P-256 key in a SoftHSM2 token, through PKCS #11
	nameKMS    = "KMS-P256"
	nameHSM    = "HSM-P256"
	kmsCommand = "kms-serve" // the hidden subcommand that serves the KMS API
)

// hsmSkip is the table's note for the HSM rows without SoftHSM2.
const hsmSkip = "softhsm2 not installed"

// The SoftHSM2 module as Debian installs it, and the run's token.
const (
	softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"
	hsmLabel      = "gatehouse-bench"
	hsmObject     = "token-key"
	hsmPIN        = "1234-bench"
	hsmSOPIN      = "5678-bench"
)

// kmsEnv is the environment Gatehouse needs for the KMS server: the dummy
// credentials internal/kmstest's server accepts, and nothing looked up
// beyond them (no instance role, no shared files).
var kmsEnv = []string{
	"AWS_ACCESS_KEY_ID=AKIDKMSTEST",
	"AWS_SECRET_ACCESS_KEY=kmstest-not-a-secret",
	"AWS_REGION=" + kmstest.Region,
	"AWS_EC2_METADATA_DISABLED=true",
	"AWS_CONFIG_FILE=/dev/null",
	"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
}

// serviceKey says whether a row's key name is one held by a key service.
func serviceKey(name string) bool { return name == nameKMS || name == nameHSM }

// serveKMS is the hidden kms-serve subcommand: github.com/nsmithuk/local-kms's
// request handlers (through internal/kmstest, its log discarded) on a free
// 127.0.0.1 port, with a LevelDB store under -dir. It creates one
// ECC_NIST_P256 signing key, prints its awskms: reference on a line, and
// serves until its standard input is closed (the benchmark ended, or
// died) or it is killed.
func serveKMS(args []string) (code int) {
	fs := flag.NewFlagSet(kmsCommand, flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for the key store")
	if err := fs.Parse(args); err != nil || *dir == "" {
		fmt.Fprintln(os.Stderr, "kms-serve: want -dir")
		return 2
	}
	t := &tb{dir: *dir}
	defer t.close()
	defer func() {
		switch v := recover().(type) {
		case nil:
		case errFatal:
			fmt.Fprintln(os.Stderr, "kms-serve:", v.msg)
			code = 1
		default:
			panic(v)
		}
	}()
	srv := kmstest.Start(t)
	fmt.Println(srv.Ref(srv.CreateKey(t, "ECC_NIST_P256")))
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// openKey makes the signing key kind for the run: a key file and its
// certificate for rsa2048 and p256, a key held by a key service for
// kms-p256 and hsm-p256 (setupKeyService). stop ends the key service;
// skip says why the key's cases cannot run.
func openKey(ctx context.Context, dir, bin, self, kind string) (kp keyPair, stop func(), skip string, err error) {
	if kind == keyKMS || kind == keyHSM {
		return setupKeyService(ctx, dir, bin, self, kind)
	}
	kp, err = writeKey(dir, kind)
	return kp, func() {}, "", err
}

// setupKeyService makes key kind (keyKMS or keyHSM) for the run under dir:
// the key in its service, refresh_secret_file, the certificate written by
// `gatehouse certificate` (signed by the key service), and a P-256 key file
// for the ceiling, which stays the bare server signing with a file. stop
// ends what it started. For keyHSM without SoftHSM2, skip says why and the
// rest is empty.
func setupKeyService(ctx context.Context, dir, bin, self, kind string) (kp keyPair, stop func(), skip string, err error) {
	stop = func() {}
	if kind == keyHSM {
		_, lerr := exec.LookPath("softhsm2-util")
		if _, serr := os.Stat(softhsmModule); lerr != nil || serr != nil {
			fmt.Println("softhsm2 is not installed (Debian: apt-get install softhsm2): the hsm-p256 cases are skipped")
			return keyPair{name: nameHSM}, stop, hsmSkip, nil
		}
	}
	sub := filepath.Join(dir, kind)
	if err := os.Mkdir(sub, 0o700); err != nil {
		return kp, stop, "", err
	}
	ceiling, err := writeKey(sub, "p256")
	if err != nil {
		return kp, stop, "", err
	}
	kp = keyPair{ceiling: &ceiling, cert: filepath.Join(sub, "cert.pem"), refresh: filepath.Join(sub, "refresh")}
	switch kind {
	case keyKMS:
		kp.name, kp.env = nameKMS, kmsEnv
		kp.key, kp.servicePid, stop, err = startKMS(sub, self)
	case keyHSM:
		kp.name = nameHSM
		kp.key, kp.env, err = makeHSMToken(sub)
		if err == nil {
			kp.bin = filepath.Join(dir, "gatehouse-pkcs11")
			fmt.Println("building gatehouse with -tags pkcs11…")
			err = goBuild(ctx, kp.bin, "-tags", "pkcs11")
		}
	default:
		err = fmt.Errorf("unknown key service key %q", kind)
	}
	if err == nil {
		err = writeRefreshSecret(kp.refresh)
	}
	if err == nil {
		err = makeCertificate(ctx, cmp.Or(kp.bin, bin), kp)
	}
	if err != nil {
		stop()
		return keyPair{}, func() {}, "", fmt.Errorf("%s: %w", kind, err)
	}
	return kp, stop, "", nil
}

// startKMS starts the kms-serve process with its store under dir and
// returns the reference of its key, its pid and how to stop it.
func startKMS(dir, self string) (ref string, pid int, stop func(), err error) {
	logFile, err := os.Create(filepath.Join(dir, "kms.log"))
	if err != nil {
		return "", 0, func() {}, err
	}
	defer logFile.Close()
	cmd := exec.Command(self, kmsCommand, "-dir", dir)
	cmd.Stderr = logFile
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, func() {}, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, func() {}, err
	}
	if err := cmd.Start(); err != nil {
		return "", 0, func() {}, err
	}
	track(cmd.Process, true)
	// stop runs with procs locked (stopAll), so it leaves the process in
	// procs.set: killing it again there does nothing.
	stop = func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case ref = <-line:
	case <-time.After(15 * time.Second):
	}
	if !strings.HasPrefix(ref, "awskms:") {
		stop()
		log, _ := os.ReadFile(logFile.Name())
		return "", 0, func() {}, fmt.Errorf("kms-serve gave no key within 15 s:\n%s", log)
	}
	u, _ := url.Parse(ref)
	fmt.Println("KMS API (local-kms handlers) listening on", u.Query().Get("endpoint"), "in process", cmd.Process.Pid)
	return ref, cmd.Process.Pid, stop, nil
}

// makeHSMToken writes a SoftHSM2 configuration with a token directory
// under dir, initialises a token, imports a new P-256 key pair into it
// (softhsm2-util --import; the PEM file is deleted afterwards) and returns
// the key's pkcs11: reference and the environment (SOFTHSM2_CONF) that
// Gatehouse needs.
func makeHSMToken(dir string) (ref string, env []string, err error) {
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return "", nil, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	confText := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(confText), 0o600); err != nil {
		return "", nil, err
	}
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte(hsmPIN+"\n"), 0o600); err != nil {
		return "", nil, err
	}
	keyDir := filepath.Join(dir, "import")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		return "", nil, err
	}
	defer os.RemoveAll(keyDir)
	imported, err := writeKey(keyDir, "p256")
	if err != nil {
		return "", nil, err
	}
	env = []string{"SOFTHSM2_CONF=" + conf}
	for _, args := range [][]string{
		{"--init-token", "--free", "--label", hsmLabel, "--pin", hsmPIN, "--so-pin", hsmSOPIN},
		{"--import", imported.key, "--token", hsmLabel, "--label", hsmObject, "--id", "01", "--pin", hsmPIN},
	} {
		cmd := exec.Command("softhsm2-util", args...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("softhsm2-util %s: %w\n%s", args[0], err, out)
		}
	}
	ref = fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-source=file:%s", hsmLabel, hsmObject, softhsmModule, pinFile)
	fmt.Println("SoftHSM2 token", hsmLabel, "in", tokens)
	return ref, env, nil
}

// writeRefreshSecret writes 48 random bytes, base64, to path.
func writeRefreshSecret(path string) error {
	b := make([]byte, 48)
	_, _ = rand.Read(b)
	return os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600)
}

// makeCertificate runs `gatehouse certificate KEY OUT`, which has the key
// service sign a self-signed certificate for the key.
func makeCertificate(ctx context.Context, bin string, kp keyPair) error {
	cmd := exec.CommandContext(ctx, bin, "certificate", kp.key, kp.cert, "--cn", "gatehouse load benchmark "+kp.name)
	cmd.Env = append(os.Environ(), kp.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("gatehouse certificate: %w\n%s", err, out)
	}
	return nil
}

// goBuild builds Gatehouse into out, stripped as `make build-pkcs11`
// does, with extra go build flags (cgo on).
func goBuild(ctx context.Context, out string, flags ...string) error {
	args := append([]string{"build", "-trimpath", "-ldflags", "-s -w", "-o", out}, flags...)
	cmd := exec.CommandContext(ctx, "go", append(args, "github.com/gatehouse/gatehouse")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building gatehouse with %s (needs cgo and a C compiler): %w", strings.Join(flags, " "), err)
	}
	return nil
}
