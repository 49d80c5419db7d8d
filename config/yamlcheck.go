package config

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem turns a YAML syntax error into a problem with its line.
// yaml.v3 leaves the line out of some messages (an error on the first line,
// an unknown alias); then the line is the first one whose prefix of data
// fails with the same message.
func syntaxProblem(file string, data []byte, err error) Problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		if n, _ := strconv.Atoi(m[1]); n > 0 {
			return Problem{File: file, Line: n, Msg: "invalid YAML: " + m[2]}
		}
		msg = "yaml: " + m[2]
	}
	return Problem{File: file, Line: failingLine(data, msg), Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

// failingLine returns the first line n such that the first n lines of data
// fail to decode with the message msg; the last line when none does alone.
func failingLine(data []byte, msg string) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	end := 0
	for n, l := range lines {
		end += len(l)
		var node yaml.Node
		if err := yaml.Unmarshal(data[:end], &node); err != nil && err.Error() == msg {
			return n + 1
		}
	}
	return max(len(lines), 1)
}

// duplicateKeys returns one problem for each mapping key, at any depth, that
// repeats an earlier key of the same mapping: the decoder would refuse the
// whole mapping, and every key in it would then look missing. yaml.v3
// compares keys by kind and text, and so does this.
func duplicateKeys(file string, root *yaml.Node) []Problem {
	var out []Problem
	var walk func(n *yaml.Node, path []string)
	walk = func(n *yaml.Node, path []string) {
		switch n.Kind {
		case yaml.MappingNode:
			first := map[string]*yaml.Node{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				p := append(append([]string{}, path...), k.Value)
				if k.Kind == yaml.ScalarNode {
					if f, dup := first[k.Value]; dup {
						out = append(out, Problem{File: file, Line: k.Line, Column: k.Column, Key: cfgerr.Key(p),
							Msg: fmt.Sprintf("duplicate key: already defined at line %d; remove one of them", f.Line)})
						continue
					}
					first[k.Value] = k
				}
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				walk(v, append(append([]string{}, path...), strconv.Itoa(i)))
			}
		case yaml.DocumentNode:
			for _, v := range n.Content {
				walk(v, path)
			}
		}
	}
	walk(root, nil)
	return out
}
