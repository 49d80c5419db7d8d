# Gatehouse build and test targets.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

.PHONY: build test

# build makes a static binary ./gatehouse.
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o gatehouse .

# test installs missing test components and runs every test.
test:
	./scripts/test.sh
