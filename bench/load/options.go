package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// options are the command line's settings.
type options struct {
	duration, warmup time.Duration
	conns            []int
	keys             []string
	cases            []caseSpec
	logTo            string
	logLevel         string
	keep             bool
	gatehouse        string
	compare          string
}

// parseFlags reads the command line.
func parseFlags() (*options, error) {
	o := &options{}
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measurement time of each case")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up time of each case, not measured")
	conns := flag.String("conns", "8,64", "connection counts, comma-separated")
	keys := flag.String("keys", "rsa2048,p256", "signing keys: rsa2048, p256 (files); kms-p256 (a KMS API server, a process of its own), hsm-p256 (SoftHSM2, gatehouse built with -tags pkcs11)")
	cases := flag.String("cases", "ceiling,static,anonymous,ldap-cached,ldap-uncached", "cases to run")
	flag.StringVar(&o.logTo, "log", "file", "where Gatehouse logs: file (in the work directory) or discard (/dev/null)")
	flag.StringVar(&o.logLevel, "log-level", "info", "Gatehouse's log level; info writes the audit line of every token, warn shows what it costs")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configurations, keys, logs)")
	flag.StringVar(&o.gatehouse, "gatehouse", "", "a gatehouse binary to run instead of building one")
	flag.StringVar(&o.compare, "compare", "", "other gatehouse binaries, comma-separated: each Gatehouse case also runs with each, as NAME-b, NAME-c…, in the same turns")
	flag.Parse()
	if o.duration <= 0 || o.warmup < 0 || o.duration+o.warmup > maxCaseTime {
		return nil, fmt.Errorf("-warmup plus -duration must be positive and at most %v", maxCaseTime)
	}
	for f := range strings.SplitSeq(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			return nil, fmt.Errorf("-conns: %q is not a connection count (1 to 1024)", f)
		}
		o.conns = append(o.conns, n)
	}
	for k := range strings.SplitSeq(*keys, ",") {
		if k = strings.TrimSpace(k); k != "rsa2048" && k != "p256" && k != keyKMS && k != keyHSM {
			return nil, fmt.Errorf("-keys: unknown key %q: want rsa2048, p256, %s or %s", k, keyKMS, keyHSM)
		}
		o.keys = append(o.keys, strings.TrimSpace(k))
	}
	for name := range strings.SplitSeq(*cases, ",") {
		i := slices.IndexFunc(allCases, func(c caseSpec) bool { return c.name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("-cases: unknown case %q", name)
		}
		o.cases = append(o.cases, allCases[i])
	}
	if o.compare != "" {
		base := o.cases
		for i, bin := range strings.Split(o.compare, ",") {
			if _, err := os.Stat(bin); err != nil {
				return nil, fmt.Errorf("-compare: %w", err)
			}
			for _, c := range base {
				if !c.ceiling {
					c.name, c.bin = fmt.Sprintf("%s-%c", c.name, 'b'+i), bin
					o.cases = append(o.cases, c)
				}
			}
		}
	}
	if o.logTo != "file" && o.logTo != "discard" {
		return nil, fmt.Errorf("-log: want file or discard")
	}
	return o, nil
}
