#!/usr/bin/env bash
# One command from a fresh clone to a working tree: system packages (Docker engine, Redis,
# PostgreSQL for the multi-coordinator tests, a local registry for private images,
# Chromium, a C toolchain), a running Docker daemon, npm dependencies (Node 22 comes from
# npm), the sample workload images and the web app build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
# A private registry with password auth, for the private-image pull tests.
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
if [ ${#need[@]} -gt 0 ]; then
  say "installing system packages: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  say "starting the Docker engine"
  as_root bash -c 'nohup dockerd >/var/log/kiln-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/kiln-dockerd.log" >&2; exit 1; }
fi

say "installing npm dependencies (includes Node 22 as node_modules/.bin/node)"
# `npm ci`: exactly the lock file, never rewriting it. The lock holds every platform's optional
# binaries (rollup, turbo, esbuild); one written without them makes `npm install` rewrite it on a
# fresh clone and `npm ci` refuse it (npm/cli#4828). .ci/run fails when setup leaves the tree dirty.
npm ci --no-audit --no-fund --loglevel=error

say "building the sample workload images"
bash scripts/build-images.sh

say "building the marketplace web app"
TURBO_TELEMETRY_DISABLED=1 npx turbo run build --filter=@kiln/marketplace --output-logs=errors-only

say "ready: run the tests with 'npm test', or a whole local network with 'npm run devnet'"
