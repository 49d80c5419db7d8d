#!/usr/bin/env bash
# Docker end-to-end test (issue 9): the seed blog's compose stack with the real
# Docker engine and docker CLI.
#
#   1. Builds the Gatehouse image with the project's Dockerfile (make image),
#      and registry images FROM scratch around distribution v3.1.2's registry
#      binary (go install, pinned) and v2.8.3 (e2e/docker/registry2), tagged
#      with the names examples/docker-compose.yml uses. Nothing is pulled.
#   2. For each registry version: `docker compose -f examples/docker-compose.yml
#      up -d` with the example unchanged (REGISTRY_IMAGE picks the version),
#      then, with a throwaway DOCKER_CONFIG: docker login, push, rmi, pull back,
#      denials, admin, logout, anonymous pulls (see scenarios below).
#   3. The PKCS #11 image (make image-pkcs11) runs `version` and, with SoftHSM2's
#      module and a token of its own mounted, validates a configuration whose
#      key is in that token and serves a token signed there.
#   4. On every exit: docker compose down -v, removes the images it built,
#      imported or pulled, restores tags it borrowed, and checks that the lists
#      of containers, images, volumes and networks equal those it started with.
#
# Environment:
#   E2E_REGISTRY_VERSIONS  "v3 v2" (default), "v3" or "v2"
#   E2E_REFRESH            auto (default): run the refresh-token check when
#                            Gatehouse returns a refresh_token, else say SKIPPED;
#                          require: run it and fail when no refresh_token comes back;
#                          only: like require, and skip the other scenarios
#                            (make e2e-docker-refresh);
#                          off: never.
#   GATEHOUSE_IMAGE, GATEHOUSE_PKCS11_IMAGE, REGISTRY_V3_IMAGE, REGISTRY_V2_IMAGE
#                          image names (defaults gatehouse:latest, gatehouse:latest-pkcs11,
#                          registry:3, registry:2.8.3).
# Ports 5000 and 5001 on 127.0.0.1 must be free (the example publishes them).
set -euo pipefail
cd "$(dirname "$0")/../.."

REGISTRY_V3_MODULE=github.com/distribution/distribution/v3/cmd/registry
REGISTRY_V3_VERSION=v3.1.2
GATEHOUSE_IMAGE=${GATEHOUSE_IMAGE:-gatehouse:latest}
GATEHOUSE_PKCS11_IMAGE=${GATEHOUSE_PKCS11_IMAGE:-gatehouse:latest-pkcs11}
SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so
REGISTRY_V3_IMAGE=${REGISTRY_V3_IMAGE:-registry:3}
REGISTRY_V2_IMAGE=${REGISTRY_V2_IMAGE:-registry:2.8.3}
VERSIONS=${E2E_REGISTRY_VERSIONS:-v3 v2}
E2E_REFRESH=${E2E_REFRESH:-auto}
REG=localhost:5000
REALM=https://localhost:5001/auth
SSL_DIR=examples/ssl # the seed's self-signed pair, made here when absent (see docs/docker.md)
MADE_SSL=""
COMPOSE_FILE_PATH=examples/docker-compose.yml
export DOCKER_BUILDKIT=0 # the classic builder: no BuildKit cache is left behind

case $E2E_REFRESH in auto | require | only | off) ;; *)
	echo "E2E_REFRESH must be auto, require, only or off, not '$E2E_REFRESH'" >&2
	exit 2
	;;
esac

START=$SECONDS
RUN_ID="$$-$RANDOM"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-e2e-docker.XXXXXX")
PROJECT="" # the compose project that is up, if any
PKCS11_CONTAINER="" # the -pkcs11 image's serving container, while it runs
OUR_IMAGES=() # image IDs this run built, imported or pulled
declare -A PRIOR_TAG=() # name we tag -> image ID it named before ("" if none)

say() { printf '[%3ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

if docker compose version >/dev/null 2>&1; then
	COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
	COMPOSE=(docker-compose)
else
	fail "neither 'docker compose' nor 'docker-compose' is installed"
fi
compose() { "${COMPOSE[@]}" -f "$COMPOSE_FILE_PATH" "$@"; }

# snapshot lists what the engine holds that this test could create.
snapshot() {
	echo "# containers"
	docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.Image}}' | sort
	echo "# images"
	docker images -a --no-trunc --format '{{.ID}} {{.Repository}}:{{.Tag}}' | sort
	echo "# volumes"
	docker volume ls -q | sort
	echo "# networks"
	docker network ls --no-trunc --format '{{.ID}} {{.Name}}' | sort
}

print_logs() {
	[ -n "$PROJECT" ] || return 0
	echo "---- docker compose ps ($PROJECT)" >&2
	COMPOSE_PROJECT_NAME=$PROJECT compose ps -a >&2 2>&1 || COMPOSE_PROJECT_NAME=$PROJECT compose ps >&2 || true
	for svc in auth registry; do
		echo "---- logs of $svc ($PROJECT), last 300 lines" >&2
		COMPOSE_PROJECT_NAME=$PROJECT compose logs --no-color --timestamps --tail=300 "$svc" >&2 || true
	done
}

stack_down() {
	[ -n "$PROJECT" ] || return 0
	COMPOSE_PROJECT_NAME=$PROJECT compose down -v --remove-orphans >"$WORK/down.log" 2>&1 ||
		{ cat "$WORK/down.log" >&2; echo "compose down failed for $PROJECT" >&2; }
	PROJECT=""
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [ $rc -ne 0 ]; then
		[ -s "$WORK/out" ] && { echo "---- output of the last command" >&2; cat "$WORK/out" >&2; }
		print_logs
	fi
	stack_down
	[ -n "$PKCS11_CONTAINER" ] && docker rm -f "$PKCS11_CONTAINER" >/dev/null 2>&1
	# Give borrowed names back, drop the ones we made, then our images.
	local name id
	for name in "${!PRIOR_TAG[@]}"; do
		if [ -n "${PRIOR_TAG[$name]}" ]; then
			docker tag "${PRIOR_TAG[$name]}" "$name" >/dev/null 2>&1
		else
			docker rmi "$name" >/dev/null 2>&1
		fi
	done
	for id in "${OUR_IMAGES[@]}"; do
		grep -q "^$id " "$WORK/before" && continue # it was there before: not ours to remove
		docker image inspect "$id" >/dev/null 2>&1 && docker rmi -f "$id" >/dev/null 2>&1
	done
	snapshot >"$WORK/after"
	if ! diff -u "$WORK/before" "$WORK/after" >"$WORK/leftovers"; then
		echo "FAIL: the engine's containers/images/volumes/networks differ from before the test:" >&2
		cat "$WORK/leftovers" >&2
		[ $rc -eq 0 ] && rc=1
	else
		say "cleanup: containers, images, volumes and networks are as before the test"
	fi
	[ -n "$MADE_SSL" ] && rm -rf "$SSL_DIR"
	rm -rf "$WORK"
	if [ $rc -eq 0 ]; then
		say "PASS (docker e2e, registries: $VERSIONS, refresh: $E2E_REFRESH)"
	else
		say "FAILED (exit $rc)"
	fi
	exit $rc
}

# expect_ok DESC CMD...: CMD must succeed.
expect_ok() {
	local desc=$1
	shift
	if ! "$@" >"$WORK/out" 2>&1; then
		fail "$desc: '$*' failed"
	fi
	say "ok: $desc"
}

# expect_denied DESC CMD...: CMD must fail, and with an authorization error
# (not, say, a connection error).
expect_denied() {
	local desc=$1
	shift
	if "$@" >"$WORK/out" 2>&1; then
		fail "$desc: '$*' succeeded, but must be denied"
	fi
	if ! grep -qiE 'denied|unauthorized|authentication required' "$WORK/out"; then
		fail "$desc: '$*' failed, but not with an authorization error"
	fi
	say "ok: $desc -- $(grep -iE 'denied|unauthorized|authentication required' "$WORK/out" | tail -1)"
}

# tag_image ID NAME: docker tag, remembering what NAME named before.
tag_image() {
	remember_name "$2"
	docker tag "$1" "$2"
}
remember_name() {
	[ -n "${PRIOR_TAG[$1]+set}" ] && return 0
	PRIOR_TAG[$1]=$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true)
}

image_id() { docker image inspect -f '{{.Id}}' "$1"; }
absent() { ! docker image inspect "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- preflight

docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info)"
for port in 5000 5001; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		fail "port $port is in use; the example publishes 5000 (registry) and 5001 (Gatehouse)"
	fi
done
snapshot >"$WORK/before"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
say "compose: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || echo '?')); work dir $WORK"

# ---------------------------------------------------------------- images

build_images() {
	remember_name "$GATEHOUSE_IMAGE"
	expect_ok "gatehouse image $GATEHOUSE_IMAGE (make image: static binary, Dockerfile FROM scratch)" \
		make -s image IMAGE="$GATEHOUSE_IMAGE"
	OUR_IMAGES+=("$(image_id "$GATEHOUSE_IMAGE")")
	local user
	user=$(docker image inspect -f '{{.Config.User}}' "$GATEHOUSE_IMAGE")
	[ "$user" = "65534:65534" ] || fail "gatehouse image runs as '$user', want 65534:65534"

	mkdir -p "$WORK/bin"
	local v
	for v in $VERSIONS; do
		case $v in
		v3)
			expect_ok "registry $REGISTRY_V3_VERSION binary (go install $REGISTRY_V3_MODULE@$REGISTRY_V3_VERSION)" \
				env CGO_ENABLED=0 GOBIN="$WORK/bin" go install -trimpath -ldflags "-s -w" \
				"$REGISTRY_V3_MODULE@$REGISTRY_V3_VERSION"
			build_registry_image "$REGISTRY_V3_IMAGE" "$WORK/bin/registry" /etc/distribution/config.yml
			;;
		v2)
			expect_ok "registry v2.8.3 binary (e2e/docker/registry2 around handlers.NewApp)" \
				env CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$WORK/bin/registry2" ./e2e/docker/registry2
			build_registry_image "$REGISTRY_V2_IMAGE" "$WORK/bin/registry2" /etc/docker/registry/config.yml
			;;
		*) fail "E2E_REGISTRY_VERSIONS: unknown version '$v' (want v3 and/or v2)" ;;
		esac
	done
}

# build_registry_image NAME BINARY CONFIG_PATH: an image FROM scratch laid out
# like the official one (binary /bin/registry, `registry serve CONFIG_PATH`).
build_registry_image() {
	local name=$1 bin=$2 config=$3 ctx
	ctx=$(mktemp -d "$WORK/ctx.XXXXXX")
	cp "$bin" "$ctx/registry"
	cp e2e/docker/registry-config.yml "$ctx/config.yml"
	cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
	cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY registry /bin/registry
COPY config.yml $config
VOLUME ["/var/lib/registry"]
EXPOSE 5000
ENTRYPOINT ["/bin/registry", "serve"]
CMD ["$config"]
EOF
	remember_name "$name"
	expect_ok "registry image $name (FROM scratch)" docker build -q -t "$name" "$ctx"
	OUR_IMAGES+=("$(image_id "$name")")
	rm -rf "$ctx"
}

# ---------------------------------------------------------------- stack

# make_ssl: the TLS pair the example mounts, made as the seed blog makes it
# (openssl, self-signed, RSA 2048, CN and SAN localhost) when it is absent.
# The image runs as 65534, so the key must be readable by that user.
make_ssl() {
	[ -f "$SSL_DIR/server.pem" ] && [ -f "$SSL_DIR/server.key" ] && return 0
	mkdir -p "$SSL_DIR"
	MADE_SSL=1
	openssl req -x509 -nodes -days 2 -newkey rsa:2048 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$SSL_DIR/server.key" -out "$SSL_DIR/server.pem" 2>/dev/null || fail "openssl could not make $SSL_DIR"
	chmod 0644 "$SSL_DIR/server.key" "$SSL_DIR/server.pem"
	say "ok: TLS pair for the example in $SSL_DIR (openssl, self-signed, as in the seed)"
}

# stack_up VERSION IMAGE: the example, unchanged, with REGISTRY_IMAGE=IMAGE.
stack_up() {
	make_ssl
	PROJECT="gatehouse-e2e-$1-$RUN_ID"
	export COMPOSE_PROJECT_NAME=$PROJECT REGISTRY_IMAGE=$2 GATEHOUSE_IMAGE
	expect_ok "docker compose -f $COMPOSE_FILE_PATH up -d (project $PROJECT, REGISTRY_IMAGE=$2)" \
		compose up -d
	local i code challenge
	for i in $(seq 1 120); do
		code=$(curl -sk -o /dev/null -w '%{http_code}' "$REALM?service=registry" || true)
		challenge=$(curl -s -D - -o /dev/null "http://$REG/v2/" | tr -d '\r' | grep -i '^www-authenticate:' || true)
		if [ "$code" = 200 ] && [ -n "$challenge" ]; then
			break
		fi
		[ "$i" = 120 ] && fail "stack not ready after 60 s (Gatehouse: HTTP $code; registry challenge: '$challenge')"
		sleep 0.5
	done
	case $challenge in
	*"realm=\"$REALM\""*) ;;
	*) fail "registry challenge '$challenge' does not name the realm $REALM" ;;
	esac
	say "ok: stack ready: Gatehouse answers, the registry challenges with $challenge"
}

# ---------------------------------------------------------------- docker CLI as a user

CFG="" # DOCKER_CONFIG of the current user session
dk() { DOCKER_CONFIG="$CFG" docker "$@"; }
new_session() {
	CFG=$(mktemp -d "$WORK/docker-config.XXXXXX")
}
config_json() { cat "$CFG/config.json" 2>/dev/null || true; }

login() {
	local user=$1 password=$2
	if ! printf '%s\n' "$password" | dk login "$REG" -u "$user" --password-stdin >"$WORK/out" 2>&1; then
		fail "docker login $REG as $user failed"
	fi
	grep -q "Login Succeeded" "$WORK/out" || fail "docker login $REG as $user: no 'Login Succeeded'"
	config_json | grep -q "\"$REG\"" || fail "docker login as $user: $CFG/config.json has no entry for $REG"
	say "ok: docker login $REG as $user"
}

login_denied() {
	local user=$1 password=$2
	if printf '%s\n' "$password" | dk login "$REG" -u "$user" --password-stdin >"$WORK/out" 2>&1; then
		fail "docker login as $user with a wrong password succeeded"
	fi
	grep -qiE 'unauthorized|denied|incorrect|authentication' "$WORK/out" ||
		fail "docker login as $user with a wrong password failed, but not with an authentication error"
	config_json | grep -q "\"$REG\"" && fail "a failed login left credentials for $REG in config.json"
	say "ok: docker login as $user with a wrong password is refused -- $(tail -1 "$WORK/out")"
}

logout() {
	expect_ok "docker logout $REG" dk logout "$REG"
	config_json | grep -q "\"$REG\"" && fail "after docker logout, config.json still has $REG: $(config_json)"
	say "ok: config.json holds no credentials for $REG after logout"
}

# new_image NAME: docker import of a one-file tarball (distinct content),
# tagged NAME; sets NEW_ID to its ID.
NEW_ID=""
new_image() {
	local name=$1 d
	d=$(mktemp -d "$WORK/layer.XXXXXX")
	mkdir "$d/root"
	printf 'gatehouse docker e2e: %s, run %s, %s\n' "$name" "$RUN_ID" "$(date +%s%N)" >"$d/root/hello.txt"
	tar -C "$d/root" -cf "$d/layer.tar" .
	remember_name "$name"
	NEW_ID=$(docker import -m "gatehouse e2e" "$d/layer.tar" "$name") || fail "docker import $name"
	OUR_IMAGES+=("$NEW_ID")
	rm -rf "$d"
}

# push_pull_back NAME ID: push NAME, remove it locally, pull it back: same image ID.
push_pull_back() {
	local name=$1 id=$2
	expect_ok "docker push $name" dk push "$name"
	expect_ok "docker rmi $name" docker rmi "$name"
	absent "$name" || fail "$name still present after docker rmi"
	expect_ok "docker pull $name" dk pull "$name"
	[ "$(image_id "$name")" = "$id" ] || fail "pulled $name is $(image_id "$name"), pushed $id"
	say "ok: $name came back from the registry with the pushed image ID ${id:7:12}"
}

# pull_check NAME ID: NAME absent locally, pulled, has ID; then removed again.
pull_check() {
	local name=$1 id=$2
	absent "$name" || docker rmi "$name" >/dev/null
	expect_ok "docker pull $name" dk pull "$name"
	[ "$(image_id "$name")" = "$id" ] || fail "pulled $name is $(image_id "$name"), want $id"
	docker rmi "$name" >/dev/null
}

# ---------------------------------------------------------------- scenarios

# scenarios VERSION: the seed blog's flow and the example policy through the engine.
scenarios() {
	local v=$1 tag="e2e-$1"
	local alice_img="$REG/alice/hello:$tag" bob_img="$REG/bob/hello:$tag"
	local pub_img="$REG/public/hello:$tag" intruder="$REG/bob/from-alice:$tag"
	local anon_img="$REG/public/from-anonymous:$tag"
	local alice_id bob_id pub_id

	# alice: login, push into her namespace, remove, pull back.
	new_session
	login_denied alice wrongpassword
	login alice alicepw
	new_image "$alice_img"
	alice_id=$NEW_ID
	push_pull_back "$alice_img" "$alice_id"
	# pushing into another user's namespace is denied; so is pulling from it.
	tag_image "$alice_id" "$intruder"
	expect_denied "alice cannot push into bob's namespace ($intruder)" dk push "$intruder"
	docker rmi "$intruder" >/dev/null
	logout

	# bob pushes his own image (so there is something of his to be denied and to pull).
	new_session
	login bob bobpw
	new_image "$bob_img"
	bob_id=$NEW_ID
	expect_ok "docker push $bob_img (as bob)" dk push "$bob_img"
	docker rmi "$bob_img" >/dev/null
	logout

	new_session
	login alice alicepw
	expect_denied "alice cannot pull bob's image ($bob_img)" dk pull "$bob_img"
	absent "$bob_img" || fail "a denied pull left $bob_img"
	logout

	# admin pulls both, and publishes an image under public/.
	new_session
	login admin adminpw
	pull_check "$alice_img" "$alice_id"
	say "ok: admin pulled alice's image"
	pull_check "$bob_img" "$bob_id"
	say "ok: admin pulled bob's image"
	new_image "$pub_img"
	pub_id=$NEW_ID
	expect_ok "docker push $pub_img (as admin)" dk push "$pub_img"
	docker rmi "$pub_img" >/dev/null
	logout

	# anonymous (the session after logout): public/* pulls, the rest is denied.
	pull_check "$pub_img" "$pub_id"
	say "ok: anonymous pull of $pub_img"
	expect_denied "anonymous cannot pull $alice_img" dk pull "$alice_img"
	new_image "$anon_img"
	expect_denied "anonymous cannot push $anon_img" dk push "$anon_img"
	docker rmi "$anon_img" >/dev/null
}

# refresh_tokens_supported: does Gatehouse return a refresh_token to the
# request docker login makes (GET, no scope, offline_token=true)?
refresh_tokens_supported() {
	curl -fsSk -u alice:alicepw \
		"$REALM?service=registry&offline_token=true&client_id=gatehouse-e2e" 2>/dev/null |
		grep -q '"refresh_token" *: *"[^"]'
}

# check_refresh_tokens VERSION: with refresh tokens, docker login stores an
# identitytoken and no password, and push and pull after login still work
# (the engine then gets its tokens with the refresh token, OAuth2 POST).
check_refresh_tokens() {
	local v=$1 name="$REG/alice/refresh:e2e-$1" id auth decoded
	new_session
	login alice alicepw
	config_json | grep -q '"identitytoken" *: *"[^"]' ||
		fail "refresh tokens: config.json after docker login holds no identitytoken: $(config_json)"
	auth=$(config_json | tr -d '\n' | sed -n 's/.*"auth" *: *"\([^"]*\)".*/\1/p')
	decoded=$(printf '%s' "$auth" | base64 -d 2>/dev/null || true)
	[ "$decoded" = "alice:" ] ||
		fail "refresh tokens: config.json's auth for $REG must carry the user name and no password, it decodes to '${decoded%%:*}:<${#decoded} bytes>'"
	config_json | grep -q alicepw && fail "refresh tokens: the password is in config.json"
	say "ok: refresh tokens: config.json holds an identitytoken and no password"
	new_image "$name"
	id=$NEW_ID
	push_pull_back "$name" "$id"
	docker rmi "$name" >/dev/null
	logout
	say "ok: refresh tokens: push and pull after login work with the identity token"
}

refresh_step() {
	local v=$1
	[ "$E2E_REFRESH" = off ] && return 0
	if refresh_tokens_supported; then
		check_refresh_tokens "$v"
	elif [ "$E2E_REFRESH" = auto ]; then
		say "SKIPPED: refresh-token check (Gatehouse returned no refresh_token for offline_token=true;" \
			"make e2e-docker-refresh requires it)"
	else
		fail "refresh tokens required (E2E_REFRESH=$E2E_REFRESH) but Gatehouse returned no refresh_token for GET $REALM?offline_token=true"
	fi
}

# ---------------------------------------------------------------- PKCS #11 image

# pkcs11_image builds the -pkcs11 image and checks that it runs; with SoftHSM2
# on the host, that it loads SoftHSM2's module (mounted with libcrypto, which
# the image lacks), logs in to a token of its own and signs a token there.
pkcs11_image() {
	remember_name "$GATEHOUSE_PKCS11_IMAGE"
	expect_ok "gatehouse image $GATEHOUSE_PKCS11_IMAGE (make image-pkcs11: cgo binary and glibc, Dockerfile.pkcs11 FROM scratch)" \
		make -s image-pkcs11 IMAGE_PKCS11="$GATEHOUSE_PKCS11_IMAGE"
	OUR_IMAGES+=("$(image_id "$GATEHOUSE_PKCS11_IMAGE")")
	expect_ok "$GATEHOUSE_PKCS11_IMAGE version" docker run --rm "$GATEHOUSE_PKCS11_IMAGE" version
	if ! command -v softhsm2-util >/dev/null || [ ! -e "$SOFTHSM_MODULE" ]; then
		say "SKIPPED: the -pkcs11 image with SoftHSM2 (apt-get install softhsm2)"
		return 0
	fi
	local hsm=$WORK/hsm libcrypto
	mkdir -p "$hsm/tokens" "$hsm/lib" "$hsm/config"
	cp -L "$SOFTHSM_MODULE" "$hsm/lib/libsofthsm2.so"
	libcrypto=$(ldd "$SOFTHSM_MODULE" | awk '$1 ~ /^libcrypto/ { print $3 }')
	[ -n "$libcrypto" ] && cp -L "$libcrypto" "$hsm/lib/"
	printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$hsm/tokens" >"$hsm/host.conf"
	printf 'directories.tokendir = /hsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' >"$hsm/softhsm2.conf"
	expect_ok "SoftHSM2 token" env SOFTHSM2_CONF="$hsm/host.conf" \
		softhsm2-util --init-token --free --label gatehouse --pin 1234 --so-pin 5678
	expect_ok "P-256 key" openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$hsm/key.pem"
	expect_ok "key pair in the token" env SOFTHSM2_CONF="$hsm/host.conf" \
		softhsm2-util --import "$hsm/key.pem" --token gatehouse --label token-key --id 01 --pin 1234
	rm -f "$hsm/key.pem"
	echo 1234 >"$hsm/config/pin"
	head -c 48 /dev/urandom | base64 >"$hsm/config/refresh"
	cat >"$hsm/config/auth_config.yml" <<-'YAML'
		server:
		  addr: ":5001"
		token:
		  issuer: "Acme auth server"
		  expiration: 900
		  certificate: /hsm/token.pem
		  key: "pkcs11:token=gatehouse;object=token-key?module-path=/hsm/lib/libsofthsm2.so&pin-source=file:/config/pin"
		  generate_if_missing: true
		  refresh_secret_file: /config/refresh
		users:
		  "": {}
		acl:
		  - match: {account: ""}
		    actions: ["pull"]
	YAML
	# The image runs as 65534: SoftHSM2 writes its token files and locks.
	chmod -R a+rwX "$hsm"
	local run=(docker run --rm -v "$hsm/config:/config:ro" -v "$hsm:/hsm"
		-e SOFTHSM2_CONF=/hsm/softhsm2.conf -e LD_LIBRARY_PATH=/hsm/lib)
	expect_ok "$GATEHOUSE_PKCS11_IMAGE validate, key in SoftHSM2" \
		"${run[@]}" "$GATEHOUSE_PKCS11_IMAGE" validate /config/auth_config.yml
	grep -q ": ok" "$WORK/out" || fail "validate did not say ok"
	# Serving: an anonymous pull token, signed in SoftHSM2 (port 5001 is free:
	# the compose stack is not up yet).
	PKCS11_CONTAINER=gatehouse-e2e-pkcs11-$RUN_ID
	expect_ok "$GATEHOUSE_PKCS11_IMAGE serving" docker run -d --name "$PKCS11_CONTAINER" -p 127.0.0.1:5001:5001 \
		"${run[@]:3}" "$GATEHOUSE_PKCS11_IMAGE"
	local i answer=""
	for i in $(seq 1 30); do
		answer=$(curl -fsS "http://127.0.0.1:5001/auth?service=registry&scope=repository:public/x:pull" 2>/dev/null) && break
		sleep 0.5
	done
	case $answer in
	*'"token":"ey'*) say "ok: $GATEHOUSE_PKCS11_IMAGE issued a token signed in SoftHSM2" ;;
	*) docker logs "$PKCS11_CONTAINER" >"$WORK/out" 2>&1; fail "$GATEHOUSE_PKCS11_IMAGE issued no token: '$answer'" ;;
	esac
	docker rm -f "$PKCS11_CONTAINER" >/dev/null
	PKCS11_CONTAINER=""
}

# ---------------------------------------------------------------- main

build_images
[ "$E2E_REFRESH" = only ] || pkcs11_image
for v in $VERSIONS; do
	case $v in v3) image=$REGISTRY_V3_IMAGE ;; v2) image=$REGISTRY_V2_IMAGE ;; esac
	say "==== registry $v ($image)"
	stack_up "$v" "$image"
	[ "$E2E_REFRESH" = only ] || scenarios "$v"
	refresh_step "$v"
	stack_down
done
