#!/usr/bin/env bash
# Build the vcsim-cdp simulator binary (main.go) against the Debian-packaged
# govmomi, in GOPATH mode (no Go module proxy needed).
#
#   deploy/vcsim/build.sh        -> last stdout line is the absolute binary path
#
# Idempotent: rebuilds only when the binary is missing or main.go is newer.
# Installs golang-go + golang-github-vmware-govmomi-dev with apt-get when missing
# (needs root or passwordless sudo). All progress output goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/.build"                       # git-ignored cache dir
out="$build/vcsim-cdp"
gopath="$build/gopath"                     # our GOPATH entry
pkg="$gopath/src/cdp/vcsim-cdp"            # import path "cdp/vcsim-cdp"
govmomi=/usr/share/gocode/src/github.com/vmware/govmomi/simulator
debs=(golang-go golang-github-vmware-govmomi-dev)

log() { echo "vcsim build: $*" >&2; }

if [[ -x "$out" && ! "$here/main.go" -nt "$out" ]]; then
    echo "$out"
    exit 0
fi

if ! command -v go >/dev/null 2>&1 || [[ ! -d "$govmomi" ]]; then
    if [[ $(id -u) -eq 0 ]]; then sudo=(); elif command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else
        log "go/govmomi missing and not root: install ${debs[*]} first"; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "installing ${debs[*]}"
    # Only refresh the package lists when the first attempt cannot find the packages.
    "${sudo[@]}" apt-get install -y -q "${debs[@]}" >&2 ||
        { "${sudo[@]}" apt-get update -q >&2 && "${sudo[@]}" apt-get install -y -q "${debs[@]}" >&2; }
fi

# go needs a build cache; fall back to ours when the environment has no HOME (some CI runners).
if [[ -z "${GOCACHE:-}${XDG_CACHE_HOME:-}${HOME:-}" ]]; then export GOCACHE="$build/gocache"; fi

mkdir -p "$pkg"
cp "$here/main.go" "$pkg/main.go"
log "building $out ($(go version))"
start=$(date +%s)
# Build to a private temp name, then rename: concurrent callers never see a half-written binary.
(cd "$pkg" && GO111MODULE=off GOFLAGS= GOPATH="$gopath:/usr/share/gocode" go build -o "$out.tmp.$$" .)
mv -f "$out.tmp.$$" "$out"
log "built in $(( $(date +%s) - start )) s"
echo "$out"
