# Gatehouse build and test targets.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

.PHONY: build build-pkcs11 test mutate image image-pkcs11 e2e-docker e2e-docker-refresh

# build makes a static binary ./gatehouse.
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o gatehouse .

# build-pkcs11 makes ./gatehouse-pkcs11 with PKCS #11 support (token keys in
# an HSM): cgo, so it is dynamically linked against glibc; netgo and osusergo
# keep name and user lookups in Go (no NSS modules to load).
build-pkcs11:
	CGO_ENABLED=1 go build -tags pkcs11,netgo,osusergo -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o gatehouse-pkcs11 .

# test installs missing test components and runs every test.
test:
	./scripts/test.sh

# mutate runs mutation testing (gremlins, installed at a pinned version when
# missing) over acl/, token/ and auth/, each bounded by MUTATE_TIMEOUT
# (default 20m), and prints each package's score and surviving mutants.
# Slow; not run in CI. MUTATE_PKGS="acl token" narrows it.
MUTATE_PKGS ?= acl token auth
mutate:
	./scripts/mutate.sh $(MUTATE_PKGS)

# IMAGE is the tag `make image` gives the container image; examples/docker-compose.yml
# runs ${GATEHOUSE_IMAGE:-gatehouse:latest} (the same default).
IMAGE ?= gatehouse:latest
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt

# image builds the static binary, stages the host's CA bundle and an empty /data
# in build/image/, and builds the Dockerfile FROM scratch (no base image is pulled).
image: build
	rm -rf build/image
	mkdir -p build/image/data
	cp $(CA_BUNDLE) build/image/ca-certificates.crt
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

# IMAGE_PKCS11 is the tag `make image-pkcs11` gives the image with PKCS #11 support.
IMAGE_PKCS11 ?= gatehouse:latest-pkcs11

# image-pkcs11 builds the cgo binary (make build-pkcs11), stages it, the build
# host's glibc runtime (scripts/stage-glibc.sh), the CA bundle and an empty
# /data in build/image-pkcs11/, and builds Dockerfile.pkcs11 FROM scratch.
image-pkcs11: build-pkcs11
	rm -rf build/image-pkcs11
	mkdir -p build/image-pkcs11/data build/image-pkcs11/rootfs
	cp $(CA_BUNDLE) build/image-pkcs11/ca-certificates.crt
	cp gatehouse-pkcs11 build/image-pkcs11/gatehouse
	./scripts/stage-glibc.sh gatehouse-pkcs11 build/image-pkcs11/rootfs
	docker build -f Dockerfile.pkcs11 --build-arg VERSION=$(VERSION) -t $(IMAGE_PKCS11) .

# e2e-docker runs the seed blog's compose stack (examples/docker-compose.yml) on the
# Docker engine against registry v3.1.2 and v2.8.3 with docker login/push/pull.
# It builds its own images and leaves nothing behind. See docs/docker.md.
e2e-docker:
	./e2e/docker/run.sh

# e2e-docker-refresh: only the refresh-token check (docker login stores an
# identitytoken, no password; push and pull still work). It fails when Gatehouse
# returns no refresh_token.
e2e-docker-refresh:
	E2E_REFRESH=only ./e2e/docker/run.sh
