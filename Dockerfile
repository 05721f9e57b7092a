# resetctl in a container: `resetctl serve` (approval pages, request API, triggers) by default.
#
#   docker build -t resetctl .
#   docker run --rm -p 8443:8443 \
#     -v /etc/resetctl:/etc/resetctl:ro -v resetctl-data:/var/lib/resetctl \
#     -e RESETCTL_TOKEN_KEY -e CONTOSO_SECRET resetctl
#
# Stage 1 builds a release binary with the locked dependencies; stage 2 is distroless (glibc,
# CA certificates, no shell, no package manager) and runs as the non-root user 65532.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY templates ./templates
COPY playbooks ./playbooks
RUN cargo build --release --locked --bin resetctl \
 && install -D -m 0755 target/release/resetctl /out/resetctl

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/resetctl /usr/local/bin/resetctl
COPY --from=build /src/playbooks /usr/share/resetctl/playbooks
# Configuration read-only from /etc/resetctl; the run store, the audit trail and the
# forwarding cursors in the data directory (a volume).
ENV RESETCTL_CONFIG=/etc/resetctl/resetctl.yaml \
    RESETCTL_DATA_DIR=/var/lib/resetctl
VOLUME ["/var/lib/resetctl"]
USER nonroot:nonroot
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/resetctl"]
CMD ["serve"]
