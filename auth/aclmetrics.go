package auth

import "github.com/prometheus/client_golang/prometheus"

// loadFailer is an authorizer that loads its rules from a database
// (acl_mongo, acl_xorm) and counts the loads that failed.
type loadFailer interface {
	loadFailures() uint64
}

// aclLoadFailuresDesc describes gatehouse_acl_load_failures_total.
var aclLoadFailuresDesc = prometheus.NewDesc("gatehouse_acl_load_failures_total",
	"Failed loads of a database ACL (database unreachable, an invalid rule); the ACL loaded before stays in force.",
	[]string{"acl"}, nil)

// aclCollector reports the load failures of the database ACLs of the
// configuration in force, read at each scrape.
type aclCollector struct{ s *Server }

func (c aclCollector) Describe(ch chan<- *prometheus.Desc) { ch <- aclLoadFailuresDesc }

func (c aclCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.state.Load()
	if st == nil {
		return
	}
	for _, a := range st.authorizers {
		if f, ok := a.(loadFailer); ok {
			ch <- prometheus.MustNewConstMetric(aclLoadFailuresDesc, prometheus.CounterValue, float64(f.loadFailures()), a.source())
		}
	}
}
