#!/usr/bin/env bash
# Builds the testbed's control-plane binaries from the Go module proxy:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
#   (+ kwok-stages.yaml, kwok's default stages taken from its module)
# into ${KOMPOX_TESTBED_CACHE:-$HOME/.cache/kompox-testbed}/<k8s-version>/bin.
#
# Idempotent: a binary whose `--version` already reports the pinned version
# is left alone, so a warm run is a no-op of a second or two. The versions
# are taken from the wrapper modules next to this script (k8s/, etcd/,
# kwok/ go.mod); nothing here is ever written into the repository.
#
# Prints the bin directory on stdout as its last line; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KOMPOX_TESTBED_CACHE:-${HOME:-/root}/.cache/kompox-testbed}"

modver() { # modver <go.mod> <module path> -> version from its require line
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1"
}
k8s_version="$(modver "$here/k8s/go.mod" k8s.io/kubernetes)"
etcd_version="$(modver "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)"
kwok_version="$(modver "$here/kwok/go.mod" sigs.k8s.io/kwok)"
for v in "$k8s_version" "$etcd_version" "$kwok_version"; do
  [[ "$v" == v* ]] || { echo "build.sh: could not read versions from go.mod files" >&2; exit 1; }
done
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"

bin="$cache/$k8s_version/bin"
mkdir -p "$bin"

# A stable module and build cache under the testbed cache (not the user's),
# so reruns on the same machine are fast and `rm -rf $cache` resets all.
export GOMODCACHE="$cache/go/mod"
export GOCACHE="$cache/go/build"
export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
# The wrapper modules say `go 1.26.0`; never let `go` fetch another toolchain.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

log() { echo "testbed/build.sh: $*" >&2; }

# has <binary> <expected substring of --version>
has() {
  [[ -x "$bin/$1" ]] && "$bin/$1" --version 2>&1 | grep -qF -- "$2"
}

need_k8s=()
has kube-apiserver "Kubernetes $k8s_version" || need_k8s+=(kube-apiserver)
has kube-controller-manager "Kubernetes $k8s_version" || need_k8s+=(kube-controller-manager)
has kube-scheduler "Kubernetes $k8s_version" || need_k8s+=(kube-scheduler)
need_etcd=0; has etcd "etcd Version: ${etcd_version#v}" || need_etcd=1
need_kwok=0; { has kwok "${kwok_version}" && [[ -s "$bin/kwok-stages.yaml" ]]; } || need_kwok=1

if [[ ${#need_k8s[@]} -eq 0 && $need_etcd -eq 0 && $need_kwok -eq 0 ]]; then
  log "up to date in $bin (kubernetes $k8s_version, etcd $etcd_version, kwok $kwok_version)"
  echo "$bin"
  exit 0
fi

# The machine image has Go; a non-login shell may lack it on PATH.
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin:${HOME:-/root}/go/bin"
command -v go >/dev/null 2>&1 || { log "the 'go' command is required (Go >= 1.26)"; exit 1; }

# One builder at a time per cache (parallel test binaries may all ask).
exec 9>"$cache/build.lock"
if ! flock -n 9; then
  log "another build holds $cache/build.lock; waiting"
  flock 9
fi
# Re-check under the lock: the other builder may have done the work.
need_k8s=()
has kube-apiserver "Kubernetes $k8s_version" || need_k8s+=(kube-apiserver)
has kube-controller-manager "Kubernetes $k8s_version" || need_k8s+=(kube-controller-manager)
has kube-scheduler "Kubernetes $k8s_version" || need_k8s+=(kube-scheduler)
need_etcd=0; has etcd "etcd Version: ${etcd_version#v}" || need_etcd=1
need_kwok=0; { has kwok "${kwok_version}" && [[ -s "$bin/kwok-stages.yaml" ]]; } || need_kwok=1

tmp="$(mktemp -d "$cache/build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# Build into $tmp, check --version, then move into place (atomic per file).
install_bins() { # install_bins <expected version substring> <names...>
  local want="$1"; shift
  for b in "$@"; do
    if ! "$tmp/$b" --version 2>&1 | grep -qF -- "$want"; then
      log "$b --version does not report $want:"; "$tmp/$b" --version >&2 || true
      exit 1
    fi
    mv -f "$tmp/$b" "$bin/$b"
  done
}

if [[ $need_etcd -eq 1 ]]; then
  log "building etcd $etcd_version"
  t=$SECONDS
  (cd "$here/etcd" && go build -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  install_bins "etcd Version: ${etcd_version#v}" etcd
  log "etcd built in $((SECONDS - t))s"
fi

if [[ $need_kwok -eq 1 ]]; then
  log "building kwok $kwok_version"
  t=$SECONDS
  (cd "$here/kwok" && go build -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version}" \
    -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)
  install_bins "$kwok_version" kwok
  # kwok runs no stages by default (kwokctl passes them in its config): take
  # kwokctl's defaults (node/fast, node/heartbeat-with-lease, pod/fast) and
  # the node-not-ready chaos stage from the same module version.
  kwok_dir="$(cd "$here/kwok" && go mod download sigs.k8s.io/kwok && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  st="$kwok_dir/kustomize/stage"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
    node/chaos/node-not-ready.yaml; do
    echo "---"; echo "# sigs.k8s.io/kwok@$kwok_version kustomize/stage/$f"; cat "$st/$f"
  done > "$tmp/kwok-stages.yaml"
  mv -f "$tmp/kwok-stages.yaml" "$bin/kwok-stages.yaml"
  log "kwok built in $((SECONDS - t))s"
fi

if [[ ${#need_k8s[@]} -gt 0 ]]; then
  log "building ${need_k8s[*]} $k8s_version (cold: ~6-10 min on 2 cores)"
  t=$SECONDS
  # The version ldflags of kubernetes' hack/lib/version.sh, without vendor/.
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor"
    ld+=" -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000"
    ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  pkgs=()
  for b in "${need_k8s[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$here/k8s" && go build -ldflags "$ld" -o "$tmp/" "${pkgs[@]}")
  install_bins "Kubernetes $k8s_version" "${need_k8s[@]}"
  log "${need_k8s[*]} built in $((SECONDS - t))s"
fi

log "done: $bin"
echo "$bin"
