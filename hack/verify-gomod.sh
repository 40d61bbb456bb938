#!/usr/bin/env bash
# Fails when go.mod/go.sum are not what `go mod tidy` makes of the code. -e because some test-only
# dependencies of our dependencies are refused by the module proxy here (see shared/runtime.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
cd "$SKERRY_ROOT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp go.mod go.sum "$tmp"/
go mod tidy -e >/dev/null 2>&1
if ! diff -u "$tmp/go.mod" go.mod || ! diff -u "$tmp/go.sum" go.sum; then
  cp "$tmp/go.mod" "$tmp/go.sum" .
  skerry::die "go.mod/go.sum are not tidy: run 'go mod tidy -e' and commit the result"
fi
