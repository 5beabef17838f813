# syntax=docker/dockerfile:1.7
#
# The kompoxops image for the Helm chart (charts/kompox). Not built in CI:
# no container engine runs there. Build and push it yourself:
#
#   docker build -t <registry>/kompoxops:0.1.0 .
#   docker push <registry>/kompoxops:0.1.0
#
# docs/deploy.md ("The image") explains the choices below.

# Builder and runtime share one Debian release (12, bookworm), so the glibc
# and the OpenSSL ABI that git2 links against match at run time.
ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# git2's C parts: libgit2 and libssh2 are built from their crates and linked
# statically, zlib too (LIBZ_SYS_STATIC); OpenSSL (HTTPS Git transport) is
# the system's libssl3, linked dynamically (the runtime image has it).
# The image's rust-toolchain.toml is not copied: the image's 1.95.0 is the
# pinned toolchain, without rustup downloading components.
ENV LIBZ_SYS_STATIC=1 \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
COPY Cargo.toml Cargo.lock ./
# The manifest names the benches; they are not built.
COPY benches benches
COPY src src
# Dependencies stay compiled between builds in BuildKit cache mounts (the
# registry and target/), so a source change rebuilds only this crate.
RUN --mount=type=cache,id=kompox-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=kompox-target,target=/src/target \
    cargo build --release --locked --bin kompoxops \
 && install -D -m 0755 target/release/kompoxops /out/kompoxops
# Fail the build if the binary needs a shared library the runtime image
# lacks (distroless/cc: glibc, libgcc, libssl3/libcrypto).
RUN /out/kompoxops version \
 && ldd /out/kompoxops \
 && ! ldd /out/kompoxops | grep -vE 'linux-vdso|ld-linux|/lib(c|m|dl|rt|pthread|gcc_s|ssl|crypto)\.so'

FROM ${RUNTIME_IMAGE}
COPY --from=builder /out/kompoxops /usr/local/bin/kompoxops
# distroless "nonroot": uid/gid 65532, no shell, no package manager; the
# chart also runs it with a read-only root filesystem (cache and /tmp are
# emptyDirs).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kompoxops"]
CMD ["reconcile"]
