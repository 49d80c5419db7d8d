package harness

import (
	"crypto"
	"crypto/ecdsa"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Trust is how a registry is told which keys sign the tokens it accepts.
type Trust string

const (
	// TrustBundle gives the registry the signing certificate as
	// rootcertbundle.
	TrustBundle Trust = "rootcertbundle"
	// TrustJWKS gives the registry only a jwks file, fetched over HTTP from
	// Gatehouse's /.well-known/jwks.json as an operator would (registry v3).
	TrustJWKS Trust = "jwks"
)

// fetchJWKS downloads Gatehouse's JWKS into dir/jwks.json and returns the
// path, for a registry's `jwks` option.
func (e *Env) fetchJWKS(t testing.TB, dir string) string {
	t.Helper()
	url := "http://" + e.Gatehouse.Host + "/.well-known/jwks.json"
	resp, err := (&http.Client{Transport: e.transport, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("fetching %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: status %d, Content-Type %q: %s", url, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	path := filepath.Join(dir, "jwks.json")
	writeFile(t, path, string(body))
	return path
}

// MatrixKeyTypes are the signing keys every row of the interop matrix runs
// with.
var MatrixKeyTypes = []KeyType{RSA2048, ECP256, ECP256LeadingZero}

// MatrixClient is a column of the interop matrix: a registry client that
// logs in and pushes or pulls in a fresh environment's registry.
type MatrixClient struct {
	Name string
	Run  func(t *testing.T, e *Env)
}

// MatrixConfig is a registry configuration and the token header Gatehouse
// is configured with for it: one row of the matrix per key type.
type MatrixConfig struct {
	Registry string // e.g. "v3.1.2"
	New      RegistryFactory
	Trust    Trust
	NoX5C    bool    // token.x5c: false
	Kid      KidMode // token.kid; "" is Gatehouse's default (libtrust)
	// Clients are the columns run for this configuration; the others show
	// "—". Nil runs every client of the matrix.
	Clients []MatrixClient
}

// Label names the configuration: registry, trust and token header.
func (c MatrixConfig) Label() string {
	header := "x5c + kid " + string(c.kid())
	if c.NoX5C {
		header = "x5c off, kid " + string(c.kid())
	}
	return fmt.Sprintf("%s %s; %s", c.Registry, c.Trust, header)
}

// selected is the columns c runs, in column order.
func (c MatrixConfig) selected(columns []MatrixClient) []MatrixClient {
	if c.Clients == nil {
		return columns
	}
	var out []MatrixClient
	for _, col := range columns {
		for _, cl := range c.Clients {
			if cl.Name == col.Name {
				out = append(out, col)
			}
		}
	}
	return out
}

func (c MatrixConfig) kid() KidMode {
	if c.Kid == "" {
		return KidLibtrust
	}
	return c.Kid
}

// RunMatrix runs every configuration with every key of MatrixKeyTypes, each
// in a fresh environment whose token header is checked first, and then each
// client of columns in it (those the configuration selects), and logs the
// results as a table: ok, FAIL, or — (not run, or skipped).
func RunMatrix(t *testing.T, columns []MatrixClient, configs []MatrixConfig) {
	start := time.Now()
	table := &matrixTable{columns: columns}
	for _, c := range configs {
		clients := c.selected(columns)
		trust := c.Trust
		if trust == "" {
			trust = TrustBundle
		}
		t.Run(c.Label(), func(t *testing.T) {
			for _, kt := range MatrixKeyTypes {
				t.Run(string(kt), func(t *testing.T) {
					row := table.addRow(c.Label(), kt) // rows -run leaves out are not shown
					defer func() {
						if t.Failed() && !row.reached {
							// The environment failed: no client could run.
							for _, cl := range clients {
								row.cells[cl.Name] = "FAIL"
							}
						}
					}()
					e := NewEnvTrust(t, c.New, kt, GatehouseOptions{NoX5C: c.NoX5C, Kid: c.Kid, ExtraACL: nestedPathsACL}, trust)
					if kt == ECP256LeadingZero {
						requireLeadingZeroCoordinate(t, e.Key.Public)
					}
					e.RequireTokenHeader(t, c.kid(), !c.NoX5C)
					row.reached = true
					for _, cl := range clients {
						t.Run(cl.Name, func(t *testing.T) {
							row.cells[cl.Name] = "FAIL" // until it has run and passed
							defer func() {
								switch {
								case t.Skipped():
									row.cells[cl.Name] = "—"
								case !t.Failed():
									row.cells[cl.Name] = "ok"
								}
							}()
							cl.Run(t, e)
						})
					}
				})
			}
		})
	}
	t.Logf("interop matrix (%s):\n%s", time.Since(start).Round(time.Millisecond), table)
}

// requireLeadingZeroCoordinate fails the test unless pub is an EC key whose
// X or Y coordinate starts with a zero byte.
func requireLeadingZeroCoordinate(t testing.TB, pub crypto.PublicKey) {
	t.Helper()
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("want an EC key, got %T", pub)
	}
	point, err := k.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	n := (len(point) - 1) / 2
	if point[1] != 0 && point[1+n] != 0 {
		t.Fatalf("the %s key has no coordinate with a leading zero byte: %x", ECP256LeadingZero, point)
	}
}

// matrixTable is the results of RunMatrix.
type matrixTable struct {
	columns []MatrixClient
	rows    []*matrixRow
}

type matrixRow struct {
	config  string
	key     KeyType
	reached bool              // the environment was up and the clients ran
	cells   map[string]string // client name → ok | FAIL | —; absent: not run
}

func (m *matrixTable) addRow(config string, kt KeyType) *matrixRow {
	r := &matrixRow{config: config, key: kt, cells: map[string]string{}}
	m.rows = append(m.rows, r)
	return r
}

// String renders the table in Markdown.
func (m *matrixTable) String() string {
	var b strings.Builder
	b.WriteString("| registry; token header | key |")
	for _, c := range m.columns {
		b.WriteString(" " + c.Name + " |")
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|", len(m.columns)) + "\n")
	for _, r := range m.rows {
		fmt.Fprintf(&b, "| %s | %s |", r.config, r.key)
		for _, c := range m.columns {
			v, ok := r.cells[c.Name]
			if !ok {
				v = "—"
			}
			b.WriteString(" " + v + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}
