# dask-scheduler-gateway: Node 20 on Debian bookworm, with Debian's Dask so the
# development mode (`run --dev`) works. No Docker engine runs in our CI, so
# test/docker/dockerfile.test.ts checks this file's paths and runs its CMD outside Docker.

FROM node:20-bookworm-slim AS build
WORKDIR /app
# Toolchain for better-sqlite3 when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
# npm ci runs the `prepare` script, which compiles src/ into dist/.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini python3-distributed python3-prometheus-client \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o node -g node -m 0700 /var/lib/scheduler-gateway
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
# State (CA, keys encrypted at rest, token hashes, telemetry spool) lives in a volume.
VOLUME ["/var/lib/scheduler-gateway"]
# 8786: Dask over mutual TLS. 8787: dashboard over HTTPS. Metrics (9464) stay on loopback.
EXPOSE 8786 8787
ENV NODE_ENV=production
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/cli/bin.js"]
# The default command is production: it serves a state directory made by `certs init` in the volume, with
# SCHEDULER_GATEWAY_PASSPHRASE (or --passphrase-file) and SCHEDULER_GATEWAY_SCHEDULER=HOST:PORT (your scheduler
# on loopback, e.g. a container sharing this network namespace). Without a scheduler it exits with a message
# and writes nothing. It never mints certificates or writes unencrypted keys.
# SCHEDULER_GATEWAY_PROCESSES=N runs the Dask port on N processes (README: Using every core); give N, not auto,
# when the container's CPUs are limited by a quota (auto counts the host's CPUs the container may run on).
# Development mode (a local Dask scheduler, a development CA, unencrypted keys in the volume) is explicit:
#   docker run IMAGE run --dev --dir /var/lib/scheduler-gateway
CMD ["run", "--dir", "/var/lib/scheduler-gateway"]
