#!/usr/bin/env bash
# Build one MinIO project (minio or mc) from a release tag into /out/<repo>, as a static binary
# with the version stamps the upstream release builds carry (-X targets a release lacks are
# ignored by the Go linker). Used by images/minio/Dockerfile; needs git, Go and the network.
# Usage: build-release.sh REPO TAG    e.g. build-release.sh minio RELEASE.2025-10-15T17-29-55Z
set -euo pipefail

repo=$1
tag=$2
[[ $tag =~ ^RELEASE\.([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2})-([0-9]{2})-([0-9]{2})Z$ ]] \
  || { echo "not a MinIO release tag: $tag" >&2; exit 2; }
# RELEASE.2025-10-15T17-29-55Z -> 2025-10-15T17:29:55Z
version="${BASH_REMATCH[1]}T${BASH_REMATCH[2]}:${BASH_REMATCH[3]}:${BASH_REMATCH[4]}Z"

git clone --quiet --depth 1 --branch "$tag" "https://github.com/minio/${repo}.git" "/src/${repo}"
cd "/src/${repo}"
commit=$(git rev-parse HEAD)
pkg="github.com/minio/${repo}/cmd"
CGO_ENABLED=0 go build -trimpath -tags kqueue -o "/out/${repo}" -ldflags "-s -w \
  -X ${pkg}.Version=${version} -X ${pkg}.ReleaseTag=${tag} \
  -X ${pkg}.CommitID=${commit} -X ${pkg}.ShortCommitID=${commit:0:12} \
  -X ${pkg}.CopyrightYear=${version:0:4}" .
"/out/${repo}" --version
