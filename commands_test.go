package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// snapshot describes every entry under dir: its path, mode, size and
// modification time.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, fmt.Sprintf("%s %v %d %v", rel, fi.Mode(), fi.Size(), fi.ModTime()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestValidateAndCheckWriteNothing: validate and check build the
// configuration as serve would, but with token.generate_if_missing and no
// key pair they only say that serving would generate one: the directory is
// left as it was.
func TestValidateAndCheckWriteNothing(t *testing.T) {
	for _, args := range [][]string{
		{"validate"},
		{"check", "--account", "alice", "repository:alice/app:pull"},
	} {
		t.Run(args[0], func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "htpasswd"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, "auth_config.yml")
			yml := strings.ReplaceAll(opsConfig(t, dir, 1, ""), dir+"/token.", dir+"/ssl/token.")
			if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			args = append([]string{args[0], cfg}, args[1:]...)
			var out, errb bytes.Buffer
			if code := run(args, nil, &out, &errb); code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
			}
			if after := snapshot(t, dir); !reflect.DeepEqual(after, before) {
				t.Fatalf("%s changed the directory:\nbefore %q\nafter  %q", args[0], before, after)
			}
			if !strings.Contains(errb.String(), "would generate") {
				t.Errorf("stderr does not say that serving would generate the key pair:\n%s", errb.String())
			}
		})
	}
}
