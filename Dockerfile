# syntax=docker/dockerfile:1
# Herald on Node 20 / Debian bookworm (glibc 2.36, like the machines CI runs on).
# npm's postinstall (scripts/patch-uws.mjs) makes uWebSockets.js load on glibc < 2.38 and verifies the result by
# loading it; the build stage carries a C toolchain and patchelf for that step and for any native dependency,
# the runtime stage only Node and the installed node_modules.

FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential patchelf python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/patch-uws.mjs scripts/patch-uws.mjs
# Dev dependencies are kept: the app runs its TypeScript through tsx.
RUN npm ci --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /app
ENV HERALD_PORT=8080
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --chown=node:node . .
USER node
EXPOSE 8080
CMD ["npx", "tsx", "src/main.ts", "serve"]
