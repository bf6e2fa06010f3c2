# syntax=docker/dockerfile:1
# Herald's image: the compiled code (dist/) with production dependencies only, on Node 20 / Debian trixie.
# trixie's glibc (2.41) is >= 2.38, what upstream's uWebSockets.js binaries are linked against, so they load
# as shipped: npm's postinstall (scripts/patch-uws.mjs) finds nothing to patch there and does nothing.

# Stage 1: every dependency, to compile TypeScript.
FROM node:20-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/patch-uws.mjs scripts/patch-uws.mjs
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.mjs scripts/build.mjs
COPY src src
RUN npm run build

# Stage 2: what runs: dist/, the migrations, bin/herald and the production dependencies (no tsx).
FROM node:20-trixie-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY scripts/patch-uws.mjs scripts/patch-uws.mjs
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist dist
COPY bin bin
COPY schemas schemas
RUN chown -R node:node /app
USER node
ENV HERALD_PORT=8080 HERALD_RUN=dist
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["bin/herald", "serve"]
