#!/usr/bin/env bash
# Finds or builds one of the Go tools the tests use, at a pinned version, and prints its path.
# Same rules as hack/binaries.sh: $PATH first when the version matches, then the project's cache,
# else `go install` from the Go module proxy into the cache (a warm machine rebuilds nothing).
#
# Usage: hack/tools.sh helm|promtool|actionlint   (path on stdout; progress on stderr)
set -euo pipefail

CACHE_ROOT="${APPTOKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/apptoken-operator}"
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$CACHE_ROOT/gomod}"
export GOCACHE="${GOCACHE_OVERRIDE:-$CACHE_ROOT/gobuild}"
export CGO_ENABLED=0
unset GOFLAGS

HELM_VERSION="${APPTOKEN_HELM_VERSION:-v3.22.0}"
PROMETHEUS_VERSION="${APPTOKEN_PROMETHEUS_VERSION:-v0.316.0}"
ACTIONLINT_VERSION="${APPTOKEN_ACTIONLINT_VERSION:-v1.7.12}"

log() { printf '[tools] %s\n' "$*" >&2; }

# spec NAME -> "package version version-regex" for the tool.
spec() {
  case "$1" in
    # helm reports "v3.22.0+g<sha>"; promtool "promtool, version 3.x" (the module is v0.3xx);
    # actionlint "1.7.12".
    helm) echo "helm.sh/helm/v3/cmd/helm $HELM_VERSION ${HELM_VERSION}" ;;
    promtool) echo "github.com/prometheus/prometheus/cmd/promtool $PROMETHEUS_VERSION promtool" ;;
    actionlint) echo "github.com/rhysd/actionlint/cmd/actionlint $ACTIONLINT_VERSION ${ACTIONLINT_VERSION#v}" ;;
    *) log "unknown tool: $1 (helm, promtool or actionlint)"; exit 2 ;;
  esac
}

version_of() {
  case "$1" in
    helm) "$2" version --short 2>/dev/null || true ;;
    promtool) "$2" --version 2>&1 | head -1 || true ;;
    actionlint) "$2" -version 2>/dev/null | head -1 || true ;;
  esac
}

main() {
  local name="${1:-}" pkg version want dir candidate
  [[ -n "$name" ]] || { log "usage: hack/tools.sh helm|promtool|actionlint"; exit 2; }
  read -r pkg version want <<<"$(spec "$name")"
  dir="$CACHE_ROOT/tools/$name-$version"
  # promtool's --version does not name the module version; only the cached build is trusted.
  if [[ "$name" != promtool ]]; then
    candidate="$(command -v "$name" 2>/dev/null || true)"
    if [[ -n "$candidate" && "$(version_of "$name" "$candidate")" == *"$want"* ]]; then
      echo "$candidate"; return
    fi
  fi
  if [[ -x "$dir/$name" ]]; then echo "$dir/$name"; return; fi
  command -v go >/dev/null 2>&1 || {
    log "$name $version is not on PATH or in $dir, and Go is not installed to build it."
    log "Install Go >= 1.24 (it is built from the Go module proxy), or put $name $version on PATH."
    exit 3
  }
  log "building $name $version from the Go module proxy (once; cached in $dir)"
  mkdir -p "$dir"
  GOBIN="$dir" go install -trimpath -ldflags "-s -w" "$pkg@$version"
  [[ -x "$dir/$name" ]] || { log "go install $pkg@$version did not produce $dir/$name"; exit 1; }
  echo "$dir/$name"
}

main "$@"
