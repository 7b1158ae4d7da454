# syntax=docker/dockerfile:1
#
# apptoken-operator image: one bundled JavaScript file (the operator and all of its runtime
# dependencies, built by hack/build/bundle.ts) on a distroless Node.js runtime (no shell, no
# package manager, no node_modules), running as a non-root numeric user. No init process: the
# operator installs its own SIGTERM/SIGINT handlers and is safe as PID 1.
#
#   docker build -t ghcr.io/apptoken/apptoken-operator:dev .
#   docker build --target token-service -t apptoken-token-service:e2e .   # kind e2e only
#
# Keep the Node.js major of the build and runtime stages the same (no native modules today, but
# the lockfile is resolved against it and the bundle targets it).
#
# Multi-arch (docker buildx --platform linux/amd64,linux/arm64): the deps and build stages run on
# the builder's own platform ($BUILDPLATFORM) because the bundle is plain JavaScript, the same for
# every architecture; the runtime stage only copies files onto the target's Node.js base, so no
# step runs under emulation.

ARG NODE_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

# ---- deps: every dependency, from the lockfile only -------------------------------------------
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NODE_ENV=development \
    npm_config_fund=false \
    npm_config_audit=false \
    npm_config_update_notifier=false
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci

# ---- build: typecheck src/, then bundle it with its dependencies into dist/ --------------------
# dist/main.js (the operator and every runtime dependency, one ES module), dist/main.js.map and
# dist/THIRD_PARTY_NOTICES.txt (the bundled packages' licences). node_modules stays in this stage.
FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY hack/build/bundle.ts ./hack/build/bundle.ts
COPY src ./src
RUN npm run build

# ---- token-service: the local Entra ID stand-in, for `make e2e-kind` only (never released) -----
FROM deps AS token-service
COPY tsconfig.json ./
COPY src/clock.ts ./src/clock.ts
COPY hack/token-service ./hack/token-service
COPY hack/e2e-kind/token-service.ts ./hack/e2e-kind/token-service.ts
USER 1000:1000
ENV NODE_ENV=production
EXPOSE 8443
ENTRYPOINT ["node", "--import", "tsx", "hack/e2e-kind/token-service.ts"]

# ---- runtime: the default target ---------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="apptoken-operator" \
      org.opencontainers.image.description="Kubernetes operator that keeps Microsoft Entra ID app tokens (client credentials) fresh in Secrets" \
      org.opencontainers.image.source="https://github.com/apptoken/apptoken-operator" \
      org.opencontainers.image.url="https://github.com/apptoken/apptoken-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="apptoken" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# Source maps are off: mapping stack traces to src/ costs ~40 MB of memory and ~0.2 s of start-up
# (the map holds every bundled source). dist/main.js.map is shipped, so when debugging set
# add --enable-source-maps to NODE_OPTIONS in the pod's env (distroless runs plain node, which
# reads it; deploy/ already sets NODE_OPTIONS for the heap limit: extend it, do not replace it).
WORKDIR /app
ENV NODE_ENV=production
# Owned by root and not writable by the runtime user; the pod also mounts / read-only.
# package.json only for its "type": "module" (dist/main.js is an ES module). No node_modules:
# everything is in the bundle, and pino-pretty, loaded only if present, is not (JSON logs).
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/dist ./dist
# distroless/nodejs's user "nonroot", by number so that runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080 8081
# The base image's ENTRYPOINT is node; no shell, no init.
CMD ["dist/main.js"]
