package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	File   string
	Line   int    // 0 when unknown
	Column int    // of the key, 0 when unknown; orders problems on one line
	Key    string // e.g. "acl[2].match.ip"; "" for the file as a whole
	Msg    string
}

// String renders the problem as "file:line: key: message".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in a configuration file, in line order.
type Error struct {
	Problems []Problem
}

// Error renders one problem per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads, decodes and validates the configuration file at path. On
// failure the error is an *Error listing every problem.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Problems: []Problem{{File: path, Msg: fmt.Sprintf("cannot read configuration: %v", errors.Unwrap(err))}}}
	}
	return Parse(path, data)
}

// Parse decodes and validates data, a configuration read from file (which
// is used in messages).
func Parse(file string, data []byte) (*Config, error) {
	c := &Config{file: file}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &Error{Problems: []Problem{syntaxProblem(file, data, err)}}
	}
	if dups := duplicateKeys(file, &root); len(dups) > 0 {
		return nil, newError(dups)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil, &Error{Problems: []Problem{{File: file, Line: max(root.Line, 1), Msg: "the configuration must be a YAML mapping with server, token, users and acl sections"}}}
	}
	c.root = root.Content[0]

	var problems []Problem
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, &Error{Problems: []Problem{syntaxProblem(file, data, err)}}
		}
		for _, msg := range te.Errors {
			problems = append(problems, c.typeProblem(msg))
		}
	}
	if err := c.checkEnv(environ); err != nil {
		problems = append(problems, c.problems(err)...)
	} else {
		expandEnv(reflect.ValueOf(c).Elem(), environ)
	}
	// A key whose value could not be decoded is not validated again: its
	// zero value would only add a second, misleading problem.
	undecoded := map[string]bool{}
	for _, p := range problems {
		undecoded[p.Key] = true
	}
	for _, p := range c.problems(c.validate()) {
		if !undecoded[p.Key] {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return nil, newError(problems)
	}
	return c, nil
}

// Annotate turns errors placed with cfgerr (as the components built from the
// configuration return them) into an *Error whose problems name this file's
// lines. A nil err stays nil.
func (c *Config) Annotate(err error) error {
	if err == nil {
		return nil
	}
	return newError(c.problems(err))
}

func newError(problems []Problem) *Error {
	sort.SliceStable(problems, func(i, j int) bool {
		if problems[i].Line != problems[j].Line {
			return problems[i].Line < problems[j].Line
		}
		return problems[i].Column < problems[j].Column
	})
	return &Error{Problems: problems}
}

func (c *Config) problems(err error) []Problem {
	var out []Problem
	for _, e := range cfgerr.Flatten(err) {
		var ce *cfgerr.Error
		if errors.As(e, &ce) {
			msg := ce.Err.Error()
			if len(ce.Path) > 0 {
				// The key names the section; drop a component prefix that repeats it.
				msg = strings.TrimPrefix(msg, ce.Path[0]+": ")
			}
			line, col := c.posOf(ce.Path)
			out = append(out, Problem{File: c.file, Line: line, Column: col, Key: cfgerr.Key(ce.Path), Msg: msg})
			continue
		}
		out = append(out, Problem{File: c.file, Msg: e.Error()})
	}
	return out
}

var (
	unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type \S+$`)
	typeMismatch = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) `?(.*?)`? into (\\S+)$")
	anyLine      = regexp.MustCompile(`^line (\d+): (.*)$`)
	quotedGot    = regexp.MustCompile(`got ("(?:[^"\\]|\\.)*")$`)
)

// typeProblem rewrites one of yaml.v3's decoding messages so it names the key.
func (c *Config) typeProblem(msg string) Problem {
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		path := findKey(c.root, nil, line, m[2])
		_, col := c.posOf(path)
		return Problem{File: c.file, Line: line, Column: col, Key: cfgerr.Key(path), Msg: "unknown key"}
	}
	if m := typeMismatch.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		path := findValue(c.root, line, m[3])
		_, col := c.posOf(path)
		return Problem{File: c.file, Line: line, Column: col, Key: cfgerr.Key(path), Msg: fmt.Sprintf("want %s, got %s %q", describeGoType(m[4]), m[2], m[3])}
	}
	if m := anyLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		hint := ""
		if q := quotedGot.FindStringSubmatch(m[2]); q != nil {
			hint, _ = strconv.Unquote(q[1])
		}
		path := findValue(c.root, line, hint)
		_, col := c.posOf(path)
		return Problem{File: c.file, Line: line, Column: col, Key: cfgerr.Key(path), Msg: m[2]}
	}
	return Problem{File: c.file, Msg: msg}
}

func describeGoType(t string) string {
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case t == "time.Duration":
		return "a duration such as 5s"
	case t == "bool":
		return "true or false"
	case t == "string", t == "*string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.Contains(t, "."):
		return "a mapping"
	}
	return t
}

// findKey returns the path of the mapping key named key on line.
func findKey(n *yaml.Node, path []string, line int, key string) []string {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := append(append([]string{}, path...), k.Value)
			if k.Line == line && k.Value == key {
				return p
			}
			if found := findKey(v, p, line, key); found != nil {
				return found
			}
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			if found := findKey(v, append(append([]string{}, path...), strconv.Itoa(i)), line, key); found != nil {
				return found
			}
		}
	}
	return nil
}

// findValue returns the path of the value on line that a decoding message
// is about: the scalar whose text is hint when there is one (several values
// can share a line in flow style), else the deepest value on the line.
func findValue(root *yaml.Node, line int, hint string) []string {
	var best []string
	bestDepth := -1
	var walk func(n *yaml.Node, path []string)
	walk = func(n *yaml.Node, path []string) {
		consider := func(v *yaml.Node, p []string) {
			if v.Line != line {
				return
			}
			score := len(p)
			if hint != "" && v.Kind == yaml.ScalarNode && v.Value == hint {
				score += 1000
			}
			if score > bestDepth {
				best, bestDepth = p, score
			}
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := append(append([]string{}, path...), n.Content[i].Value)
				consider(n.Content[i+1], p)
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				p := append(append([]string{}, path...), strconv.Itoa(i))
				consider(v, p)
				walk(v, p)
			}
		}
	}
	walk(root, nil)
	return best
}

// posOf returns the line and column of the deepest node along path that
// exists in the file: the key's own position when the whole path exists,
// else the closest enclosing one's.
func (c *Config) posOf(path []string) (line, col int) {
	if c.root == nil {
		return 0, 0
	}
	n := c.root
	line, col = n.Line, n.Column
	for _, p := range path {
		switch n.Kind {
		case yaml.MappingNode:
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if k := n.Content[i]; k.Value == p {
					line, col, n, found = k.Line, k.Column, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line, col
			}
		case yaml.SequenceNode:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(n.Content) {
				return line, col
			}
			n = n.Content[i]
			line, col = n.Line, n.Column
		default:
			return line, col
		}
	}
	return line, col
}

// has reports whether the top-level key is present in the file.
func (c *Config) has(key string) bool { return c.value(key) != nil }
