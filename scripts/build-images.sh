#!/usr/bin/env bash
# Builds the sample workload images (kiln/matmul:1, kiln/render:1, kiln/busybox:1, kiln/infer:1) from
# workloads/<name>/ with the classic builder, FROM scratch: no registry is reachable on
# provider or CI machines, so nothing may be pulled. Images already present are skipped
# unless --force, so running this again is cheap.
#
# Usage: scripts/build-images.sh [--force] [matmul|render|busybox|infer ...]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALL=(matmul render busybox infer)
BUSYBOX_BIN="${BUSYBOX_BIN:-/bin/busybox}"
CC="${CC:-gcc}"
force=0
names=()

for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    matmul|render|busybox|infer) names+=("$arg") ;;
    *) echo "build-images: unknown argument '$arg' (expected --force or one of: ${ALL[*]})" >&2; exit 2 ;;
  esac
done
[ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")

fail() { echo "build-images: $*" >&2; exit 1; }

if ! server="$(docker version --format '{{.Server.Version}}' 2>&1)"; then
  fail "cannot reach the Docker engine (is dockerd running and is ${DOCKER_HOST:-/var/run/docker.sock} accessible?): ${server##*$'\n'}"
fi

# The build context is a temp dir holding only what the Dockerfile copies, so nothing else
# from the repository leaks into the image or the builder's cache key.
ctx=""
cleanup() { [ -n "$ctx" ] && rm -rf "$ctx"; return 0; }
trap cleanup EXIT

compile() { # compile <name> <ctx>: a static binary, so FROM scratch needs no libc
  command -v "$CC" >/dev/null || fail "$CC is needed to build kiln/$1:1 (apt-get install -y gcc)"
  # -ffp-contract=off: no fused multiply-add, so float results do not depend on the CPU.
  "$CC" -O2 -static -ffp-contract=off -Wall -Wextra -o "$2/$1" "$ROOT/workloads/$1/main.c" -lm
}

copy_busybox() { # copy_busybox <ctx>
  [ -x "$BUSYBOX_BIN" ] || fail "$BUSYBOX_BIN not found (apt-get install -y busybox-static, or set BUSYBOX_BIN)"
  if command -v readelf >/dev/null && readelf -l "$BUSYBOX_BIN" 2>/dev/null | grep -q 'program interpreter'; then
    fail "$BUSYBOX_BIN is dynamically linked; FROM scratch needs the static one (apt-get install -y busybox-static)"
  fi
  cp "$BUSYBOX_BIN" "$1/busybox"
}

built=()
for name in "${names[@]}"; do
  ref="kiln/$name:1"
  if [ "$force" -eq 0 ] && docker image inspect "$ref" >/dev/null 2>&1; then
    echo "skip  $ref (already present; --force rebuilds)"
    continue
  fi
  start="$(date +%s.%N)"
  ctx="$(mktemp -d "${TMPDIR:-/tmp}/kiln-image-$name.XXXXXX")"
  if [ "$name" = busybox ]; then copy_busybox "$ctx"; else compile "$name" "$ctx"; fi
  cp "$ROOT/workloads/$name/Dockerfile" "$ctx/Dockerfile"
  mkdir -m 0755 "$ctx/out"
  if ! log="$(DOCKER_BUILDKIT=0 docker build --label "org.opencontainers.image.source=kiln/workloads/$name" -t "$ref" "$ctx" 2>&1)"; then
    echo "$log" >&2
    fail "docker build of $ref failed"
  fi
  rm -rf "$ctx"; ctx=""
  secs="$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  size="$(docker image inspect --format '{{.Size}}' "$ref" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
  echo "built $ref in ${secs}s ($size)"
  built+=("$ref")
done

echo "build-images: ${#built[@]} built, $(( ${#names[@]} - ${#built[@]} )) already present (engine $server)"
