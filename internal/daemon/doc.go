// Package daemon is the Gatehouse process: it loads a configuration, builds
// the token server from it (Build), and serves it (Serve): the listener (TCP
// or a unix socket) with its connection limit, HTTP or TLS with a
// certificate that a reload can replace, the metrics listener, graceful
// shutdown on SIGTERM and SIGINT, reload on SIGHUP and when a watched file
// changes, batched log writes and the garbage collector's tuning.
//
// Import rules: daemon imports auth/, config/ and the packages below them;
// none of those imports daemon. Only package main and internal/commands
// (and tests) import it.
package daemon
