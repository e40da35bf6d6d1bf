# Dockerfile - one ringkv node. Two stages: built with the -dev packages,
# run with the libraries alone, as a non-root user. The base is Debian 12
# (tools/docker-base-image.sh makes it locally where no registry answers).
# docker-compose.yml runs three of these; README "Docker compose".
FROM debian:bookworm AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      gcc libc6-dev meson ninja-build pkg-config python3 \
      libprotobuf-c-dev protobuf-c-compiler libnng-dev libsodium-dev \
      librocksdb-dev libcjson-dev libcivetweb-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY meson.build meson_options.txt ./
COPY proto proto
COPY include include
COPY src src
RUN meson setup build --buildtype=release -Dtests=false -Dintegration=false >/dev/null \
 && ninja -C build ringkvd src/cli/ringkv

FROM debian:bookworm
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libnng1 libcivetweb1 librocksdb7.8 libprotobuf-c1 libsodium23 libcjson1 \
      libcurl4 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/ringkv --shell /usr/sbin/nologin ringkv \
 && mkdir -p /var/lib/ringkv \
 && chown ringkv:ringkv /var/lib/ringkv
COPY --from=build /src/build/ringkvd /usr/local/bin/ringkvd
COPY --from=build /src/build/src/cli/ringkv /usr/local/bin/ringkv
COPY webclient /usr/share/ringkv/webclient
USER ringkv
# The cluster secret comes from the environment (CLUSTER_SECRET), never
# from the image.
ENV RINGKV_DATA=/var/lib/ringkv \
    RINGKV_WEBCLIENT=/usr/share/ringkv/webclient \
    RINGKV_HTTP=0.0.0.0:8001
VOLUME /var/lib/ringkv
EXPOSE 8001 9001
HEALTHCHECK --interval=2s --timeout=2s --retries=15 \
  CMD curl -fsS http://127.0.0.1:8001/health >/dev/null || exit 1
ENTRYPOINT ["ringkvd"]
