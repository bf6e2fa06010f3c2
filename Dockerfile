# Herald on Node 20 (Debian bookworm). The postinstall step makes uWebSockets.js load on bookworm's
# glibc 2.36 by editing the binary in place (scripts/patch-uws.mjs); it needs nothing but Node.
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/patch-uws.mjs scripts/patch-uws.mjs
RUN npm ci --no-audit --no-fund
COPY . .
ENV NODE_ENV=production HERALD_PORT=8080
EXPOSE 8080
CMD ["node", "--import", "tsx", "src/main.ts", "serve"]
