package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// errorLine is a line of `gatehouse validate` output as the docs quote it.
var errorLine = regexp.MustCompile(`^auth_config\.yml:\d+: `)

// hiddenExamples are the configurations behind documented error examples
// whose file the document does not show, keyed by "document#n" (the n-th
// error example of the document, from 1).
var hiddenExamples = map[string]string{
	"README.md#1": `server:
  addr: ":5001"
users:
  alice:
    password: "$2a$04$4uKsKXPXqj7SE5URbNMM0.fRrPtPQ4i5AbLhK3.WbeRMpW5P3n5HG"
  bob:
    password: "$2a$04$4uKsKXPXqj7SE5URbNMM0.fRrPtPQ4i5AbLhK3.WbeRMpW5P3n5HG"
acl:
  - match: {account: alice}
    actions: ["*"]
  - match: {account: bob}
    actions: [pull]
  - match:
      acount: carol
    actions: [pull]
token:
  issuer: "Acme auth"
  certificate: /ssl/token.pem
  key: /ssl/token.key
  expiration: 30
`,
}

// docBlock is a fenced code block of a Markdown document.
type docBlock struct {
	lang, text string
	line       int // of the opening fence
}

func fencedBlocks(doc string) []docBlock {
	var out []docBlock
	var cur *docBlock
	for i, l := range strings.Split(doc, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			cur = &docBlock{lang: strings.TrimPrefix(l, "```"), line: i + 1}
		case cur != nil && l == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		}
	}
	return out
}

// isErrorExample reports whether every line of a block is a quoted problem.
func isErrorExample(b docBlock) bool {
	lines := strings.Split(strings.TrimSpace(b.text), "\n")
	for _, l := range lines {
		if !errorLine.MatchString(l) {
			return false
		}
	}
	return b.lang == "" && len(lines) > 0
}

// TestDocumentedErrorsMatchValidate runs every error example of the docs (a
// code block of "auth_config.yml:LINE: key: message" lines) through
// `gatehouse validate`: the configuration is the ```yaml block just before
// it, or its entry in hiddenExamples, and the output must be the block,
// line for line. A changed message or line in either place fails here.
func TestDocumentedErrorsMatchValidate(t *testing.T) {
	docs, _ := filepath.Glob("docs/*.md")
	docs = append([]string{"README.md"}, docs...)
	used := map[string]bool{}
	found := 0
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		blocks := fencedBlocks(string(data))
		n := 0
		for i, b := range blocks {
			if !isErrorExample(b) {
				continue
			}
			n++
			found++
			id := fmt.Sprintf("%s#%d", filepath.Base(doc), n)
			t.Run(id, func(t *testing.T) {
				yml, hidden := hiddenExamples[id]
				switch {
				case hidden:
					used[id] = true
				case i > 0 && blocks[i-1].lang == "yaml":
					yml = blocks[i-1].text
				default:
					t.Fatalf("%s:%d: error example without a ```yaml block before it or an entry in hiddenExamples", doc, b.line)
				}
				dir := t.TempDir()
				path := filepath.Join(dir, "auth_config.yml")
				if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
					t.Fatal(err)
				}
				var out, errb bytes.Buffer
				if code := run([]string{"validate", path}, nil, &out, &errb); code != 1 {
					t.Fatalf("validate exit %d, want 1\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
				}
				if got := strings.ReplaceAll(errb.String(), path, "auth_config.yml"); got != b.text {
					t.Errorf("%s:%d documents\n%s\nbut validate prints\n%s", doc, b.line, b.text, got)
				}
			})
		}
	}
	if found < 3 {
		t.Errorf("found %d error examples in the docs, want at least 3 (README and configuration.md)", found)
	}
	for id := range hiddenExamples {
		if !used[id] {
			t.Errorf("hiddenExamples[%q] matches no error example in the docs", id)
		}
	}
}
