package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/internal/cfgerr"
)

// envRef matches ${env:NAME} in a string value.
var envRef = regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}`)

// checkEnv returns a problem for every ${env:NAME} in the file whose NAME is
// not set, at the key that holds it.
func (c *Config) checkEnv(lookup func(string) (string, bool)) error {
	var errs []error
	var walk func(n *yaml.Node, path []string)
	walk = func(n *yaml.Node, path []string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], append(append([]string{}, path...), n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				walk(v, append(append([]string{}, path...), strconv.Itoa(i)))
			}
		case yaml.ScalarNode:
			for _, m := range envRef.FindAllStringSubmatch(n.Value, -1) {
				if _, ok := lookup(m[1]); !ok {
					errs = append(errs, cfgerr.At(fmt.Errorf("environment variable %s is not set", m[1]), path...))
				}
			}
		}
	}
	walk(c.root, nil)
	return errors.Join(errs...)
}

// expandEnv replaces ${env:NAME} in every string of the decoded
// configuration: string fields, pointers to strings, slices and map values.
func expandEnv(v reflect.Value, lookup func(string) (string, bool)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			expandEnv(v.Elem(), lookup)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[yaml.Node]() {
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				expandEnv(v.Field(i), lookup)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			expandEnv(v.Index(i), lookup)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			expandEnv(e, lookup)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		if s := v.String(); envRef.MatchString(s) && v.CanSet() {
			v.SetString(envRef.ReplaceAllStringFunc(s, func(ref string) string {
				val, _ := lookup(envRef.FindStringSubmatch(ref)[1])
				return val
			}))
		}
	}
}

// environ is the lookup Load uses.
var environ = os.LookupEnv
