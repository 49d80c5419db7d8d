package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse/gatehouse/config"
)

// TestExampleConfigValidates checks the README's example as `gatehouse
// validate` does (which writes nothing: only serving creates the development
// key in examples/dev, which git ignores).
func TestExampleConfigValidates(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"validate", "examples/auth_config.yml"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// TestKubernetesExampleConfig checks the configuration embedded in the
// Kubernetes example's ConfigMap (its key files exist only in a cluster).
func TestKubernetesExampleConfig(t *testing.T) {
	f, err := os.Open("examples/kubernetes/gatehouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var found bool
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if doc.Kind != "ConfigMap" {
			continue
		}
		found = true
		t.Setenv("GATEHOUSE_ADMIN_HASH", "$2a$04$4uKsKXPXqj7SE5URbNMM0.fRrPtPQ4i5AbLhK3.WbeRMpW5P3n5HG")
		if _, err := config.Parse(filepath.Join("configmap", "auth_config.yml"), []byte(doc.Data["auth_config.yml"])); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatal("no ConfigMap in the example")
	}
}

// TestComposeExampleConfig loads the compose example's configuration (its
// TLS pair exists only inside the containers, so only the file itself is
// checked here; make e2e-docker runs the whole stack).
func TestComposeExampleConfig(t *testing.T) {
	cfg, err := config.Load("examples/compose/auth_config.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Certificate != "/ssl/server.pem" || cfg.Token.Certificate != cfg.Server.Certificate || cfg.Token.Key != cfg.Server.Key {
		t.Fatalf("the example must serve TLS and sign with the same pair: server %q/%q, token %q/%q",
			cfg.Server.Certificate, cfg.Server.Key, cfg.Token.Certificate, cfg.Token.Key)
	}
}

// TestExampleNestedNamespace: under the example policy a user owns the
// nested paths of its namespace (helm pushes alice/charts/mychart), and
// nobody else's.
func TestExampleNestedNamespace(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"check", "examples/auth_config.yml", "--account", "alice",
		"repository:alice/charts/mychart:pull,push", "repository:bob/x/y:pull", "repository:alice:pull"}
	if code := run(args, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		`repository:alice/charts/mychart:pull,push: pull,push (rule 1 "users own ${account}/**")`,
		"repository:bob/x/y:pull: nothing (no rule matched)",
		"repository:alice:pull: nothing (no rule matched)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
}
