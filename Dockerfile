# Debian 12's stock nginx with the module installed from its Debian package
# (scripts/package.sh) and the demo site nginx-conf/debian-site.conf:
#
#   docker build -t nginx-dynamic-upstream .
#   docker run --rm -p 8080:8080 -p 8089:8089 -p 127.0.0.1:8088:8088 \
#       -v ndu-state:/var/lib/nginx/dynamic-upstream nginx-dynamic-upstream
#
# 8080 proxies to the upstream "backends", 8089 by Host header, 8088 is the
# admin API (publish it on the host's 127.0.0.1 only). Logs go to
# stdout/stderr; the state files to the volume.

# Build stage: what scripts/setup.sh installs, Rust, and the package.
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# Debian 12's rustc (1.63) is older than the module's minimum (1.81): rustup's
# installer binary (not a script piped into a shell) installs a pinned toolchain.
ARG RUST_VERSION=1.95.0
RUN arch=$(uname -m) \
 && curl --proto '=https' --tlsv1.2 -fsSo /tmp/rustup-init \
      "https://static.rust-lang.org/rustup/dist/$arch-unknown-linux-gnu/rustup-init" \
 && chmod +x /tmp/rustup-init \
 && /tmp/rustup-init -y --no-modify-path --profile minimal --default-toolchain "$RUST_VERSION" \
 && rm /tmp/rustup-init
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
RUN scripts/setup.sh && scripts/package.sh

# Runtime stage: nginx and the package, nothing else.
FROM debian:bookworm-slim
COPY --from=build /src/target/package/libnginx-mod-http-dynamic-upstream_*.deb /tmp/
COPY nginx-conf/debian-site.conf /tmp/
# The package depends on the ABI of the nginx it was built for
# (nginx-abi-1.22.1-7), which only bookworm's nginx provides.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx /tmp/libnginx-mod-http-dynamic-upstream_*.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/libnginx-mod-http-dynamic-upstream_*.deb
# The demo site on all of the container's addresses; the admin API also
# answers the Docker networks' addresses, from which published ports arrive.
RUN rm /etc/nginx/sites-enabled/default \
 && sed -E -e 's/listen 127\.0\.0\.1:(8080|8088|8089);/listen \1;/' \
           -e 's|^( *)allow 127\.0\.0\.1;|&\n\1allow 172.16.0.0/12;|' \
      /tmp/debian-site.conf > /etc/nginx/sites-enabled/dynamic-upstream \
 && rm /tmp/debian-site.conf \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log \
 && nginx -t

VOLUME /var/lib/nginx/dynamic-upstream
EXPOSE 8080 8088 8089
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
