// Package ldaptest runs a throwaway OpenLDAP slapd for tests: loopback
// ports, a test CA and server certificate generated in Go, and a small
// directory of people and groups loaded through the running server with
// ldapadd (so the memberof overlay fills memberOf).
//
// It needs the Debian packages slapd and ldap-utils (scripts/test.sh
// installs them). When they are missing, Start skips the test, or fails it
// when the environment variable CI is "true".
//
//	srv := ldaptest.Start(t)
//	cfg := authn.LDAPConfig{Addr: srv.Addr, Base: ldaptest.People, ...}
//	srv.Stop()    // the directory is down: requests must fail with 503
//	srv.Restart() // same ports, same data
//
// Only tests import it.
package ldaptest

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// The directory's layout.
const (
	Suffix    = "dc=example,dc=org"
	People    = "ou=people," + Suffix
	Groups    = "ou=groups," + Suffix
	AdminDN   = "cn=admin," + Suffix
	adminPW   = "adminpw"
	ServiceDN = "uid=svc," + People
	// ServicePassword is the password of ServiceDN.
	ServicePassword = "svcpw"
)

// User is an account of the test directory.
type User struct {
	UID, Password string
}

// DN returns the user's entry DN (the uid RDN value DN-escaped).
func (u User) DN() string { return "uid=" + escapeDN(u.UID) + "," + People }

// The accounts. Alice is in the groupOfNames "pushers" (memberOf) and the
// posixGroup "developers" (memberUid); Bob only in "developers"; Carol in
// the groupOfNames "Admins". Dave is in "pushers" and has a name no other
// test authenticator uses (for end-to-end tests next to static users).
// Twin1 and Twin2 share cn "twin". "doe, john" has a uid that needs DN
// escaping.
var (
	Alice = User{"alice", "alicepw"}
	Dave  = User{"dave", "davepw"}
	Bob   = User{"bob", "bobpw"}
	Carol = User{"carol", "carolpw"}
	Doe   = User{"doe, john", "doepw"}
	Twin1 = User{"twin1", "twinpw"}
	Twin2 = User{"twin2", "twinpw"}
)

// Server is a running slapd.
type Server struct {
	// Addr serves plain LDAP and StartTLS, TLSAddr LDAPS; both 127.0.0.1:PORT.
	Addr, TLSAddr string
	// CAFile is the PEM CA that signed the server certificate (valid for
	// 127.0.0.1 and localhost); OtherCAFile is a CA that did not.
	CAFile, OtherCAFile string
	// BindPasswordFile holds ServicePassword.
	BindPasswordFile string
	Dir              string

	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts slapd on two free loopback ports and loads the directory.
// It stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	testutil.UsesComponent(t, "slapd")
	slapd := lookPath(t, "slapd", "/usr/sbin/slapd")
	ldapadd := lookPath(t, "ldapadd", "/usr/bin/ldapadd")
	s := &Server{t: t, Dir: t.TempDir()}
	s.Addr, s.TLSAddr = freeAddr(t), freeAddr(t)
	s.CAFile = filepath.Join(s.Dir, "ca.pem")
	s.OtherCAFile = filepath.Join(s.Dir, "other-ca.pem")
	s.BindPasswordFile = filepath.Join(s.Dir, "bind-password")
	writeCerts(t, s.Dir)
	must(t, os.MkdirAll(filepath.Join(s.Dir, "data"), 0o700))
	must(t, os.WriteFile(s.BindPasswordFile, []byte(ServicePassword+"\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(s.Dir, "slapd.conf"), []byte(s.config()), 0o600))
	must(t, os.WriteFile(filepath.Join(s.Dir, "data.ldif"), []byte(entries()), 0o600))
	s.start(slapd)
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(s.Dir, "slapd.log"))
			t.Logf("--- slapd log (%s) ---\n%s", s.Dir, log)
		}
	})
	out, err := exec.Command(ldapadd, "-x", "-H", "ldap://"+s.Addr, "-D", AdminDN, "-w", adminPW,
		"-f", filepath.Join(s.Dir, "data.ldif")).CombinedOutput()
	if err != nil {
		t.Fatalf("ldaptest: ldapadd: %v\n%s", err, out)
	}
	return s
}

// SetPassword replaces u's password as the directory's administrator, as
// an operator's password change would.
func (s *Server) SetPassword(u User, password string) {
	s.t.Helper()
	ldapmodify := lookPath(s.t, "ldapmodify", "/usr/bin/ldapmodify")
	cmd := exec.Command(ldapmodify, "-x", "-H", "ldap://"+s.Addr, "-D", AdminDN, "-w", adminPW)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n", u.DN(), ssha(password)))
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("ldaptest: ldapmodify: %v\n%s", err, out)
	}
}

// Stop stops slapd (SIGTERM, then SIGKILL after 5 s) and waits for it.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	cmd, done := s.cmd, s.done
	s.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGCONT) // in case it is paused
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts slapd again on the same ports and data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start(lookPath(s.t, "slapd", "/usr/sbin/slapd"))
}

// Pause stops slapd with SIGSTOP: the kernel still accepts connections,
// but nothing answers, as with an overloaded or hung directory. It returns
// once the process is stopped.
func (s *Server) Pause() {
	s.signal(syscall.SIGSTOP)
	stat := fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid)
	for range 200 {
		b, err := os.ReadFile(stat)
		if err != nil {
			time.Sleep(50 * time.Millisecond) // no /proc: give the signal time
			return
		}
		// "pid (comm) S ...": the state follows the last ')'.
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "T" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.t.Fatal("ldaptest: slapd did not stop after SIGSTOP")
}

// Resume continues a paused slapd.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatal("ldaptest: slapd is not running")
	}
	must(s.t, s.cmd.Process.Signal(sig))
}

func (s *Server) start(slapd string) {
	t := s.t
	t.Helper()
	log, err := os.OpenFile(filepath.Join(s.Dir, "slapd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	must(t, err)
	defer log.Close()
	// -d 0 keeps slapd in the foreground, so the process we started is
	// slapd and we stop it by its PID.
	cmd := exec.Command(slapd, "-f", filepath.Join(s.Dir, "slapd.conf"),
		"-h", fmt.Sprintf("ldap://%s/ ldaps://%s/", s.Addr, s.TLSAddr), "-d", "0")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("ldaptest: starting slapd: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.done)
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range []string{s.Addr, s.TLSAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			exited := false
			select {
			case <-s.done:
				exited, err = true, fmt.Errorf("slapd exited (%v)", cmd.ProcessState)
			default:
			}
			if exited || time.Now().After(deadline) {
				out, _ := os.ReadFile(filepath.Join(s.Dir, "slapd.log"))
				t.Fatalf("ldaptest: slapd does not listen on %s: %v\n%s", addr, err, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (s *Server) config() string {
	return fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
TLSCACertificateFile %[1]s/ca.pem
TLSCertificateFile %[1]s/cert.pem
TLSCertificateKeyFile %[1]s/key.pem
database mdb
maxsize 104857600
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/data
index objectClass eq
index uid,cn,member,memberUid eq
overlay memberof
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
`, s.Dir, Suffix, AdminDN, ssha(adminPW))
}

func entries() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n", Suffix)
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: people\n\n", People)
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: groups\n\n", Groups)
	person := func(u User, cn string) {
		fmt.Fprintf(&b, "dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nuserPassword: %s\n\n",
			u.DN(), u.UID, cn, u.UID, ssha(u.Password))
	}
	person(User{"svc", ServicePassword}, "Service account")
	person(Alice, "Alice")
	person(Bob, "Bob")
	person(Carol, "Carol")
	person(Dave, "Dave")
	person(Doe, "John Doe")
	person(Twin1, "twin")
	person(Twin2, "twin")
	fmt.Fprintf(&b, "dn: cn=pushers,%s\nobjectClass: groupOfNames\ncn: pushers\nmember: %s\nmember: %s\n\n", Groups, Alice.DN(), Dave.DN())
	fmt.Fprintf(&b, "dn: cn=Admins,%s\nobjectClass: groupOfNames\ncn: Admins\nmember: %s\n\n", Groups, Carol.DN())
	fmt.Fprintf(&b, "dn: cn=developers,%s\nobjectClass: posixGroup\ncn: developers\ngidNumber: 5000\nmemberUid: %s\nmemberUid: %s\n\n",
		Groups, Alice.UID, Bob.UID)
	return b.String()
}

// ssha is an OpenLDAP {SSHA} password hash.
func ssha(password string) string {
	salt := make([]byte, 8)
	_, _ = rand.Read(salt)
	h := sha1.Sum(append([]byte(password), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h[:], salt...))
}

// escapeDN escapes an RDN value (RFC 4514) for the few characters the test
// accounts use.
func escapeDN(v string) string {
	return strings.NewReplacer(`\`, `\\`, `,`, `\,`, `+`, `\+`, `"`, `\"`, `<`, `\<`, `>`, `\>`, `;`, `\;`).Replace(v)
}

func lookPath(t testing.TB, name, fallback string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback
	}
	msg := fmt.Sprintf("ldaptest: %s not found: install the Debian packages slapd and ldap-utils (scripts/test.sh does)", name)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true, so a missing component fails")
	}
	t.Skip(msg)
	return ""
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
}
