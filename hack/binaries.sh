#!/usr/bin/env bash
# Finds or builds the control-plane binaries at one pinned Kubernetes release and prints the
# directory that holds all four (kube-apiserver, kube-controller-manager, kubectl, etcd).
#
# Order for each binary: $KUBEBUILDER_ASSETS, $PATH, the project's cache dir, else a build from
# the Go module proxy. A found binary is used only when its version matches the pin, because a
# kubectl or apiserver of another minor release behaves differently from the one we test against.
#
# Usage: hack/binaries.sh [--print-dir]   (prints the bin dir on stdout; progress goes to stderr)
set -euo pipefail

K8S_VERSION="${APPTOKEN_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${APPTOKEN_ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${APPTOKEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/apptoken-operator}"
BIN_DIR="$CACHE_ROOT/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
# Go's caches live beside the binaries so a warm machine rebuilds nothing.
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$CACHE_ROOT/gomod}"
export GOCACHE="${GOCACHE_OVERRIDE:-$CACHE_ROOT/gobuild}"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0

log() { printf '[binaries] %s\n' "$*" >&2; }

k8s_minor() { sed -E 's/^v([0-9]+\.[0-9]+).*/\1/' <<<"$1"; }
want_minor="$(k8s_minor "$K8S_VERSION")"

# version_ok NAME PATH -> 0 when the binary at PATH is of the pinned release line.
version_ok() {
  local name="$1" path="$2" out
  [[ -x "$path" ]] || return 1
  case "$name" in
    kube-apiserver|kube-controller-manager)
      out="$("$path" --version 2>/dev/null || true)"            # "Kubernetes v1.34.4"
      [[ "$out" =~ v([0-9]+\.[0-9]+) ]] && [[ "${BASH_REMATCH[1]}" == "$want_minor" ]] ;;
    kubectl)
      out="$("$path" version --client -o yaml 2>/dev/null || true)"
      [[ "$out" =~ gitVersion:\ v([0-9]+\.[0-9]+) ]] && [[ "${BASH_REMATCH[1]}" == "$want_minor" ]] ;;
    etcd)
      out="$("$path" --version 2>/dev/null || true)"            # "etcd Version: 3.6.16"
      # Kubernetes documents etcd >= 3.5.11 (watch progress notifications for watch-list).
      [[ "$out" =~ etcd\ Version:\ 3\.([0-9]+)\.([0-9]+) ]] || return 1
      (( BASH_REMATCH[1] > 5 || (BASH_REMATCH[1] == 5 && BASH_REMATCH[2] >= 11) )) ;;
  esac
}

# find_binary NAME -> prints a usable path or nothing.
find_binary() {
  local name="$1" candidate
  if [[ -n "${KUBEBUILDER_ASSETS:-}" ]] && version_ok "$name" "$KUBEBUILDER_ASSETS/$name"; then
    echo "$KUBEBUILDER_ASSETS/$name"; return
  fi
  candidate="$(command -v "$name" 2>/dev/null || true)"
  if [[ -n "$candidate" ]] && version_ok "$name" "$candidate"; then echo "$candidate"; return; fi
  if version_ok "$name" "$BIN_DIR/$name"; then echo "$BIN_DIR/$name"; return; fi
}

no_go() {
  cat >&2 <<MSG
apptoken-operator: cannot find the control-plane binaries ($*) at Kubernetes $K8S_VERSION,
and Go is not installed to build them. Provide them in one of three ways:
  1. set KUBEBUILDER_ASSETS to a directory holding kube-apiserver, kube-controller-manager,
     kubectl and etcd (for example from: setup-envtest use $want_minor -p path);
  2. put binaries of Kubernetes $want_minor (and etcd >= 3.5.11) on your PATH;
  3. install Go >= 1.24 and rerun: they are built from the Go module proxy and cached in
     $BIN_DIR
MSG
  exit 3
}

build_kubernetes() {
  local work="$CACHE_ROOT/build/k8s-$K8S_VERSION" gomod
  mkdir -p "$work" "$BIN_DIR"
  log "building kube-apiserver, kube-controller-manager, kubectl $K8S_VERSION from the Go module proxy (10-25 min cold)"
  gomod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -nE 's/^\s*"GoMod": "(.*)",?$/\1/p')"
  [[ -f "$gomod" ]] || { log "could not download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  local staging_version="v0.${K8S_VERSION#v1.}"
  {
    echo "module apptoken.local/k8sbins"
    grep -E '^go [0-9]' "$gomod"
    grep -E '^godebug' "$gomod" || true
    echo "require k8s.io/kubernetes $K8S_VERSION"
    # Every staging module that k8s.io/kubernetes replaces with ./staging is published on its own
    # at v0.<minor>.<patch>; point the wrapper at those.
    sed -nE 's#^\s*(k8s\.io/[A-Za-z0-9._-]+) => \./staging/src/.*$#\1#p' "$gomod" | sort -u |
      while read -r m; do echo "replace $m => $m $staging_version"; done
  } >"$work/go.mod"
  # godebug blocks span several lines; copy them verbatim if present.
  if grep -qE '^godebug \($' "$gomod"; then
    sed -i '/^godebug/d' "$work/go.mod"
    sed -n '/^godebug (/,/^)/p' "$gomod" >>"$work/go.mod"
  fi
  local pkg="k8s.io/component-base/version" cg="k8s.io/client-go/pkg/version"
  local major="${K8S_VERSION#v}"; major="${major%%.*}"
  local minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  local ld="-s -w"
  for p in "$pkg" "$cg"; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  (cd "$work" && go mod download k8s.io/kubernetes && \
    go build -trimpath -ldflags "$ld" -o "$BIN_DIR/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kubectl)
}

build_etcd() {
  local work="$CACHE_ROOT/build/etcd-$ETCD_VERSION"
  mkdir -p "$work" "$BIN_DIR"
  log "building etcd $ETCD_VERSION from the Go module proxy"
  local gomod
  gomod="$(cd "$work" && go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | sed -nE 's/^\s*"GoMod": "(.*)",?$/\1/p')"
  {
    echo "module apptoken.local/etcdbin"
    grep -E '^go [0-9]' "$gomod"
    echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    # etcd's modules replace each other with ../ paths; all are published at the same tag.
    sed -nE 's#^\s*(go\.etcd\.io/etcd/[A-Za-z0-9./-]+) => \.\./.*$#\1#p' "$gomod" | sort -u |
      while read -r m; do echo "replace $m => $m $ETCD_VERSION"; done
  } >"$work/go.mod"
  local ld="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
  (cd "$work" && go mod download go.etcd.io/etcd/server/v3 && \
    go build -trimpath -ldflags "$ld" -o "$BIN_DIR/etcd" go.etcd.io/etcd/server/v3)
}

main() {
  local missing=() k8s_missing=0 name
  declare -A found=()
  for name in kube-apiserver kube-controller-manager kubectl etcd; do
    found[$name]="$(find_binary "$name")"
    [[ -n "${found[$name]}" ]] || missing+=("$name")
  done
  if ((${#missing[@]})); then
    command -v go >/dev/null 2>&1 || no_go "${missing[*]}"
    for name in "${missing[@]}"; do [[ "$name" == etcd ]] || k8s_missing=1; done
    ((k8s_missing)) && build_kubernetes
    [[ " ${missing[*]} " == *" etcd "* ]] && build_etcd
    for name in "${missing[@]}"; do
      found[$name]="$(find_binary "$name")"
      [[ -n "${found[$name]}" ]] || { log "built $name but it does not report the pinned version"; exit 1; }
    done
  fi
  # One directory with all four, so callers need a single path (as KUBEBUILDER_ASSETS does).
  mkdir -p "$BIN_DIR"
  for name in kube-apiserver kube-controller-manager kubectl etcd; do
    if [[ "${found[$name]}" != "$BIN_DIR/$name" ]]; then ln -sf "${found[$name]}" "$BIN_DIR/$name"; fi
  done
  echo "$BIN_DIR"
}

main "$@"
