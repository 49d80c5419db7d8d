# Gatehouse container image: the static binary, the CA bundle and nothing else.
#
# No base image is pulled: `make image` builds the static binary (make build,
# CGO_ENABLED=0) and stages the host's CA bundle in build/image/, then builds
# this FROM scratch. See docs/docker.md.
#
# Like cesanta/docker_auth's image, the command is the configuration path, so
# compose files written for docker_auth work unchanged:
#   docker run -v $PWD/config:/config:ro -p 5001:5001 gatehouse:latest /config/auth_config.yml
FROM scratch

ARG VERSION=devel
LABEL org.opencontainers.image.title="gatehouse" \
      org.opencontainers.image.description="Token-authentication server for Docker registries, configured with docker_auth's auth_config.yml" \
      org.opencontainers.image.version="${VERSION}"

# CA certificates, for HTTPS connections Gatehouse makes (Go reads this path).
COPY build/image/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# /data: an empty directory the unprivileged user owns. A named volume mounted
# there starts with this ownership, so token.generate_if_missing can write a
# development key pair into it (examples/docker-compose.yml does).
COPY --chown=65534:65534 build/image/data/ /data/
COPY gatehouse /gatehouse

# nobody:nogroup. Listen on a port above 1023.
USER 65534:65534
EXPOSE 5001
ENTRYPOINT ["/gatehouse"]
CMD ["/config/auth_config.yml"]
