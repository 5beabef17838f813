#!/usr/bin/env bash
# Builds Gitea, the real forge of the pull-request tests
# (tests/support/gitea.rs), from the Go module proxy, the way build.sh and
# build-helm.sh build Kubernetes and Helm, into
#   ${KOMPOX_TESTBED_CACHE:-$HOME/.cache/kompox-testbed}/gitea/<version>/gitea
#
# `go install code.gitea.io/gitea@version` refuses Gitea (its go.mod has
# `replace` directives), so the module source is downloaded
# (`go mod download`), copied into a writable temp dir and built there with
# its own go.mod/go.sum:
# * tags `bindata`: options (locales, licences, gitignores), templates,
#   public/ (only the images: the front-end is never built, no npm) and the
#   migration schemas are embedded, so the binary runs from any directory;
#   the four bindata.dat files are made by Gitea's own
#   build/generate-bindata.go (what `make generate-backend` runs);
# * tags `sqlite sqlite_unlock_notify` (what Gitea's release builds use):
#   v1.26's only SQLite driver is github.com/mattn/go-sqlite3, so this is a
#   cgo build and needs a C compiler (gcc; ~1 min of the cold build);
# * the version ldflags of Gitea's Makefile, so `gitea --version` and
#   GET /api/v1/version report the real version.
#
# Why v1.26.0 and not the newer v1.27.3 on the proxy: v1.27 renamed its
# module to `gitea.dev` and requires gitea.dev/actions-proto-go and
# gitea.dev/sdk, which the module proxy here refuses (403, host not on its
# allowlist); v1.26.0 needs only hosts the proxy serves. (v1.27 would also
# build with CGO_ENABLED=0: its default SQLite driver is modernc.org.)
#
# Idempotent: a binary whose `--version` reports the pinned version and
# whose stamp names the same build is left alone (a warm run takes a
# fraction of a second). The Go module and build caches are the testbed's,
# shared with build.sh and build-helm.sh (Go's caches are safe for
# concurrent use); its own lock.
#
# Prints the gitea binary's path on stdout as its last line; progress goes
# to stderr.
set -euo pipefail

GITEA_VERSION="v1.26.0"
MODULE="code.gitea.io/gitea"
TAGS="bindata sqlite sqlite_unlock_notify"

cache="${KOMPOX_TESTBED_CACHE:-${HOME:-/root}/.cache/kompox-testbed}"
dir="$cache/gitea/$GITEA_VERSION"
bin="$dir/gitea"
mkdir -p "$dir"

ld="-s -w -X main.Version=${GITEA_VERSION#v} -X 'main.Tags=$TAGS'"
stamp="go build $MODULE@$GITEA_VERSION -tags '$TAGS' -ldflags '$ld' CGO_ENABLED=1"

log() { echo "testbed/build-gitea.sh: $*" >&2; }

up_to_date() {
  [[ -x "$bin" ]] &&
    [[ "$(cat "$dir/stamp" 2>/dev/null)" == "$stamp" ]] &&
    "$bin" --version 2>/dev/null | grep -qF -- "version ${GITEA_VERSION#v} "
}

if up_to_date; then
  log "up to date: $bin (Gitea $GITEA_VERSION)"
  echo "$bin"
  exit 0
fi

command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin:${HOME:-/root}/go/bin"
command -v go >/dev/null 2>&1 || { log "the 'go' command is required (Go >= 1.26.2)"; exit 1; }
command -v "${CC:-gcc}" >/dev/null 2>&1 || { log "a C compiler (${CC:-gcc}) is required: SQLite is cgo"; exit 1; }

# One builder at a time (parallel test binaries may all ask); its own lock.
exec 9>"$cache/gitea.lock"
if ! flock -n 9; then
  log "another build holds $cache/gitea.lock; waiting"
  flock 9
fi
# Re-check under the lock: the other builder may have done the work.
if up_to_date; then
  log "built by another process: $bin"
  echo "$bin"
  exit 0
fi

export GOMODCACHE="$cache/go/mod"
export GOCACHE="$cache/go/build"
export CGO_ENABLED=1
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
# Gitea v1.26.0 says `go 1.26.2`; never let `go` fetch another toolchain.
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

tmp="$(mktemp -d "$cache/gitea-build.XXXXXX")"
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

log "building Gitea $GITEA_VERSION (cold: ~5 min on 2 cores, plus the module downloads on a new machine)"
t=$SECONDS
# Outside any module, so the download is not recorded anywhere.
src_dir="$(cd "$tmp" && go mod download -json "$MODULE@$GITEA_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -n "$src_dir" && -f "$src_dir/go.mod" ]] || { log "go mod download gave no source dir for $MODULE@$GITEA_VERSION"; exit 1; }
# The module cache is read-only; build in a writable copy.
cp -R "$src_dir" "$tmp/src"
chmod -R u+w "$tmp/src"
cd "$tmp/src"

log "downloading Gitea's dependencies"
go mod download

log "embedding options, templates, public and migration schemas (bindata)"
for pair in options:modules/options public:modules/public templates:modules/templates \
  modules/migration/schemas:modules/migration; do
  go run build/generate-bindata.go "${pair%%:*}" "${pair#*:}/bindata.dat" >/dev/null
done

log "compiling (go build -tags '$TAGS')"
go build -tags "$TAGS" -ldflags "$ld" -o "$tmp/gitea" .
got="$("$tmp/gitea" --version 2>&1 || true)"
if [[ "$got" != *"version ${GITEA_VERSION#v} "* ]]; then
  log "gitea --version reports '$got', not ${GITEA_VERSION#v}"
  exit 1
fi
cd /
mv -f "$tmp/gitea" "$bin"
printf '%s\n' "$stamp" > "$dir/stamp.tmp" && mv -f "$dir/stamp.tmp" "$dir/stamp"
log "Gitea $GITEA_VERSION built in $((SECONDS - t))s: $bin"
echo "$bin"
