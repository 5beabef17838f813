#!/usr/bin/env bash
# Builds the Helm CLI for the chart tests (tests/chart.rs) from the Go module
# proxy, the way build.sh builds the control plane:
#   go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION
# into ${KOMPOX_TESTBED_CACHE:-$HOME/.cache/kompox-testbed}/helm/<version>/bin,
# with the version ldflags of helm's Makefile, so that `helm version` reports
# the real version and `.Capabilities.KubeVersion` (lint, template) is the
# testbed's Kubernetes minor instead of helm's built-in default v1.20
# (docs/testing.md, shared testbed notes §5).
#
# Idempotent: a binary whose `helm version` reports the pinned version and
# whose stamp names the same ldflags is left alone (a warm run takes well
# under a second). Separate from build.sh and its lock, so a chart test that
# only lints does not wait for a cold Kubernetes build; the Go module and
# build caches are shared with it (Go's caches are safe for concurrent use).
#
# Prints the helm binary's path on stdout as its last line; progress goes to
# stderr.
set -euo pipefail

HELM_VERSION="v3.22.0"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${KOMPOX_TESTBED_CACHE:-${HOME:-/root}/.cache/kompox-testbed}"

# The Kubernetes minor that helm assumes: the testbed's (k8s/go.mod).
k8s_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }
  $1 == "require" && $2 == "k8s.io/kubernetes" { print $3; exit }' "$here/k8s/go.mod")"
[[ "$k8s_version" == v1.* ]] || { echo "build-helm.sh: no k8s.io/kubernetes version in k8s/go.mod" >&2; exit 1; }
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"

dir="$cache/helm/$HELM_VERSION"
bin="$dir/bin"
mkdir -p "$bin"

m=helm.sh/helm/v3
ld="-s -w -X $m/internal/version.version=$HELM_VERSION -X $m/internal/version.gitTreeState=clean"
for p in pkg/chartutil pkg/lint/rules; do
  ld+=" -X $m/$p.k8sVersionMajor=1 -X $m/$p.k8sVersionMinor=$k8s_minor"
done
stamp="go install $m/cmd/helm@$HELM_VERSION -ldflags '$ld'"

log() { echo "testbed/build-helm.sh: $*" >&2; }

up_to_date() {
  [[ -x "$bin/helm" ]] &&
    [[ "$(cat "$dir/stamp" 2>/dev/null)" == "$stamp" ]] &&
    "$bin/helm" version --template '{{.Version}}' 2>/dev/null | grep -qxF -- "$HELM_VERSION"
}

if up_to_date; then
  log "up to date: $bin/helm ($HELM_VERSION, Kubernetes 1.$k8s_minor)"
  echo "$bin/helm"
  exit 0
fi

command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin:${HOME:-/root}/go/bin"
command -v go >/dev/null 2>&1 || { log "the 'go' command is required (Go >= 1.26)"; exit 1; }

# One builder at a time (parallel test binaries may all ask); its own lock,
# not build.sh's.
exec 9>"$cache/helm.lock"
if ! flock -n 9; then
  log "another build holds $cache/helm.lock; waiting"
  flock 9
fi
# Re-check under the lock: the other builder may have done the work.
if up_to_date; then
  log "built by another process: $bin/helm"
  echo "$bin/helm"
  exit 0
fi

export GOMODCACHE="$cache/go/mod"
export GOCACHE="$cache/go/build"
export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false"
# helm v3.22.0 says `go 1.26.0`; never let `go` fetch another toolchain.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

tmp="$(mktemp -d "$cache/helm-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

log "building helm $HELM_VERSION (Kubernetes 1.$k8s_minor capabilities; cold: a few minutes on 2 cores)"
t=$SECONDS
# Outside any module, so `go install pkg@version` uses helm's own go.mod/go.sum.
(cd "$tmp" && GOBIN="$tmp" go install -ldflags "$ld" "$m/cmd/helm@$HELM_VERSION")
got="$("$tmp/helm" version --template '{{.Version}}' 2>&1 || true)"
if [[ "$got" != "$HELM_VERSION" ]]; then
  log "helm version reports '$got', not $HELM_VERSION"
  exit 1
fi
mv -f "$tmp/helm" "$bin/helm"
printf '%s\n' "$stamp" > "$dir/stamp.tmp" && mv -f "$dir/stamp.tmp" "$dir/stamp"
log "helm $HELM_VERSION built in $((SECONDS - t))s: $bin/helm"
echo "$bin/helm"
