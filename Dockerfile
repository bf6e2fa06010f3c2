# syntax=docker/dockerfile:1
# Herald on Node 20 / Debian bookworm (glibc 2.36, like the machines CI runs on). npm's postinstall
# (scripts/patch-uws.mjs) makes uWebSockets.js load on glibc < 2.38 by editing the binary in JavaScript and
# checks the result by loading it: no compiler or patchelf needed.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/patch-uws.mjs scripts/patch-uws.mjs
# Dev dependencies stay: tsx runs the TypeScript sources, and the image can run the tests.
RUN npm ci --no-audit --no-fund
COPY . .
RUN chown -R node:node /app
USER node
ENV HERALD_PORT=8080
EXPOSE 8080
CMD ["bin/herald", "serve"]
