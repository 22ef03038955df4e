# syntax=docker/dockerfile:1
# infergate: one image for the gateway, the backend replicas and the control-plane commands.
#
#   docker build -t infergate:0.1.0 .
#   docker run --rm -p 8001:8001 infergate:0.1.0 backend --port 8001     # the sample models
#   docker run --rm -p 8001:8001 -v /srv/models:/models:ro infergate:0.1.0 backend --model-repository /models
#
# Stages: deps (every dependency, for the build), build (tsc to dist/, the sample models),
# prod-deps (runtime dependencies only), runtime (node, dist/, the models; non-root, read-only
# friendly: nothing is written under /app). The GPU variant is Dockerfile.gpu.
#
# No dependency's install script runs (.npmrc: ignore-scripts=true), so onnxruntime-node's would-be
# CUDA download is skipped and `npm ci` needs only the npm registry; ONNXRUNTIME_NODE_INSTALL=skip
# says the same to onnxruntime-node's own script, should it ever run.

ARG NODE_VERSION=20.20.2

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /src
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund

FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY cli ./cli
COPY common ./common
COPY backend ./backend
COPY gateway ./gateway
COPY models ./models
COPY policies ./policies
RUN npm run build \
  && node bin/infergate.js models build /src/models/repository \
  && node bin/infergate.js policy validate policies/fleet.yaml

FROM node:${NODE_VERSION}-bookworm-slim AS prod-deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
COPY deploy/prune-onnxruntime.mjs /tmp/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force \
  && node /tmp/prune-onnxruntime.mjs node_modules

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
LABEL org.opencontainers.image.title="infergate" \
      org.opencontainers.image.description="One ingress URL for every model: an Open Inference Protocol gateway and onnxruntime-node backend replicas." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production \
    INFERGATE_HOST=0.0.0.0 \
    INFERGATE_MODEL_REPOSITORY=/app/models/repository \
    INFERGATE_LOG_FORMAT=json
WORKDIR /app
COPY --from=prod-deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/models/repository ./models/repository
COPY policies ./policies
COPY deploy/healthcheck.mjs ./deploy/healthcheck.mjs
# The node image's unprivileged user, by number so that a cluster can check runAsNonRoot.
USER 1000:1000
# 8080 gateway, 9901 gateway admin (/metrics), 8001 backend replica.
EXPOSE 8080 9901 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "/app/deploy/healthcheck.mjs"]
ENTRYPOINT ["node", "/app/bin/infergate.js"]
CMD ["--help"]
