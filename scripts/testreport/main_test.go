package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	stream := strings.Join([]string{
		`{"Action":"start","Package":"p/ldap"}`,
		`{"Action":"run","Package":"p/ldap","Test":"TestBind"}`,
		`{"Action":"output","Package":"p/ldap","Test":"TestBind","Output":"    ldaptest.go:88: gatehouse-component: slapd\n"}`,
		`{"Action":"pass","Package":"p/ldap","Test":"TestBind"}`,
		`{"Action":"run","Package":"p/ldap","Test":"TestSearch"}`,
		`{"Action":"output","Package":"p/ldap","Test":"TestSearch","Output":"    ldaptest.go:88: gatehouse-component: slapd\n"}`,
		`{"Action":"output","Package":"p/ldap","Test":"TestSearch","Output":"    x_test.go:9: wrong answer\n"}`,
		`{"Action":"fail","Package":"p/ldap","Test":"TestSearch"}`,
		`{"Action":"output","Package":"p/ldap","Output":"FAIL\tp/ldap\t0.1s\n"}`,
		`{"Action":"fail","Package":"p/ldap"}`,
		`{"Action":"run","Package":"p/e2e","Test":"TestEngine"}`,
		`{"Action":"output","Package":"p/e2e","Test":"TestEngine","Output":"    c.go:1: gatehouse-component: Docker engine\n"}`,
		`{"Action":"output","Package":"p/e2e","Test":"TestEngine","Output":"    c.go:2: no docker engine answers\n"}`,
		`{"Action":"output","Package":"p/e2e","Test":"TestEngine","Output":"--- SKIP: TestEngine (0.00s)\n"}`,
		`{"Action":"skip","Package":"p/e2e","Test":"TestEngine"}`,
		`{"Action":"output","Package":"p/e2e","Output":"ok  \tp/e2e\t0.2s\n"}`,
		`{"Action":"pass","Package":"p/e2e"}`,
		`go: downloading example.com/x v1.0.0`,
	}, "\n")

	var out bytes.Buffer
	r := newReport(&out)
	for _, l := range strings.Split(stream, "\n") {
		r.add([]byte(l))
	}
	var table bytes.Buffer
	r.writeComponents(&table)

	if !r.failed {
		t.Error("a failed test and package did not make the report fail")
	}
	for _, want := range []string{
		"--- FAIL: TestSearch (p/ldap)\n", "wrong answer", "FAIL\tp/ldap\t0.1s", "ok  \tp/e2e\t0.2s", "go: downloading example.com/x",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "TestBind") {
		t.Errorf("output shows a passing test:\n%s", out.String())
	}
	if len(r.skipped) != 1 || !strings.Contains(r.skipped[0], "TestEngine: c.go:2: no docker engine answers") {
		t.Errorf("skipped = %q", r.skipped)
	}
	for _, want := range []string{
		"Docker engine    did not run 0 tests passed, 0 failed, 1 skipped",
		"slapd            FAILED      1 tests passed, 1 failed, 0 skipped",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("component table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestReportPassing(t *testing.T) {
	var out bytes.Buffer
	r := newReport(&out)
	for _, l := range []string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"    a.go:1: gatehouse-component: nginx\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"pass","Package":"p"}`,
	} {
		r.add([]byte(l))
	}
	var table bytes.Buffer
	r.writeComponents(&table)
	if r.failed {
		t.Error("a passing stream failed")
	}
	if want := "nginx            ran         1 tests passed"; !strings.Contains(table.String(), want) {
		t.Errorf("component table lacks %q:\n%s", want, table.String())
	}
}
