# Debian 12's stock nginx with the dynamic upstream module and the demo
# configuration (nginx-conf/quickstart.conf). Mirrors scripts/setup.sh.
#
#   docker build -t nginx-dynamic-upstream .
#   docker run --rm --network host nginx-dynamic-upstream
FROM debian:bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx nginx-dev libclang-dev libpcre2-dev libssl-dev zlib1g-dev \
      build-essential pkg-config ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
ENV PATH=/root/.cargo/bin:$PATH

WORKDIR /src
COPY . .
RUN scripts/setup.sh \
 && cargo build --locked --release -p nginx-dynamic-upstream \
 && install -m 0644 target/release/libngx_http_dynamic_upstream_module.so \
      /usr/lib/nginx/modules/ngx_http_dynamic_upstream_module.so \
 && install -m 0644 nginx-conf/quickstart.conf /etc/nginx/quickstart.conf \
 && mkdir -p /usr/share/nginx/logs \
 && rm -rf target build

# Debian's prefix is /usr/share/nginx, where modules/ links to
# /usr/lib/nginx/modules, so quickstart.conf's load_module path resolves.
EXPOSE 8080 8088 8089
CMD ["nginx", "-c", "/etc/nginx/quickstart.conf", "-g", "daemon off;"]
