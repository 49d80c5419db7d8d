// Command testreport reads `go test -json` on standard input and prints what
// a plain `go test` prints (a line per package, the output of each failed
// test), the tests that were skipped and why, and a table of the real
// components the suite used: each test that logged
// testutil.UsesComponent's marker counts for that component, with its
// outcome. scripts/test.sh writes that table to a file (-components) and
// shows it at the end of the run.
//
// Lines that are not JSON (go's own messages) are copied through. The exit
// status is 1 when a test or a package failed, 0 otherwise.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/gatehouse/gatehouse/internal/testutil"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// testKey names one test of one package.
type testKey struct{ pkg, test string }

// tally counts the outcomes of the tests that used one component.
type tally struct{ pass, fail, skip int }

// report accumulates what the event stream says.
type report struct {
	out        io.Writer
	output     map[testKey]*strings.Builder // each running test's output
	uses       map[testKey][]string         // components each test used
	components map[string]*tally
	skipped    []string // "pkg Test: reason"
	failed     bool
}

func newReport(out io.Writer) *report {
	return &report{
		out:        out,
		output:     map[testKey]*strings.Builder{},
		uses:       map[testKey][]string{},
		components: map[string]*tally{},
	}
}

// add takes one line of the stream.
func (r *report) add(line []byte) {
	var e event
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
		fmt.Fprintf(r.out, "%s\n", line)
		return
	}
	if e.Test == "" {
		switch e.Action {
		case "output", "build-output":
			// The package's own lines: "ok  pkg 1.2s", "FAIL pkg", panics
			// outside a test, build errors.
			if !strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "--- ") && strings.TrimSpace(e.Output) != "PASS" {
				fmt.Fprint(r.out, e.Output)
			}
		case "fail", "build-fail":
			r.failed = true
		}
		return
	}
	k := testKey{e.Package, e.Test}
	switch e.Action {
	case "run":
		r.output[k] = &strings.Builder{}
	case "output":
		b := r.output[k]
		if b == nil {
			b = &strings.Builder{}
			r.output[k] = b
		}
		b.WriteString(e.Output)
		if _, name, ok := strings.Cut(e.Output, testutil.ComponentMarker); ok {
			r.use(k, strings.TrimSpace(name))
		}
	case "pass", "fail", "skip":
		r.finish(k, e.Action)
	}
}

// use records that test k used component name.
func (r *report) use(k testKey, name string) {
	for _, n := range r.uses[k] {
		if n == name {
			return
		}
	}
	r.uses[k] = append(r.uses[k], name)
	t := r.components[name]
	if t == nil {
		t = &tally{}
		r.components[name] = t
	}
}

// finish records the outcome of test k.
func (r *report) finish(k testKey, action string) {
	out := ""
	if b := r.output[k]; b != nil {
		out = b.String()
	}
	delete(r.output, k)
	switch action {
	case "fail":
		r.failed = true
		fmt.Fprintf(r.out, "--- FAIL: %s (%s)\n%s", k.test, k.pkg, out)
	case "skip":
		r.skipped = append(r.skipped, fmt.Sprintf("%s %s: %s", k.pkg, k.test, skipReason(out)))
	}
	for _, name := range r.uses[k] {
		t := r.components[name]
		switch action {
		case "pass":
			t.pass++
		case "fail":
			t.fail++
		case "skip":
			t.skip++
		}
	}
	delete(r.uses, k)
}

// skipReason is the last line a skipped test logged, its t.Skip message.
func skipReason(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		return l
	}
	return "(no reason given)"
}

// writeComponents writes the component table.
func (r *report) writeComponents(w io.Writer) {
	names := make([]string, 0, len(r.components))
	for n := range r.components {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := r.components[n]
		status := "ran"
		switch {
		case t.fail > 0:
			status = "FAILED"
		case t.pass == 0:
			status = "did not run"
		}
		fmt.Fprintf(w, "  %-16s %-11s %d tests passed, %d failed, %d skipped\n", n, status, t.pass, t.fail, t.skip)
	}
}

func main() {
	components := flag.String("components", "", "write the table of components the tests used to this file")
	flag.Parse()
	r := newReport(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		r.add(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "testreport: reading go test -json: %v\n", err)
		os.Exit(2)
	}
	if len(r.skipped) > 0 {
		fmt.Printf("skipped tests (%d):\n", len(r.skipped))
		for _, s := range r.skipped {
			fmt.Printf("  %s\n", s)
		}
	}
	if *components != "" {
		f, err := os.Create(*components)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testreport: %v\n", err)
			os.Exit(2)
		}
		r.writeComponents(f)
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "testreport: %v\n", err)
			os.Exit(2)
		}
	}
	if r.failed {
		os.Exit(1)
	}
}
