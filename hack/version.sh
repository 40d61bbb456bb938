#!/usr/bin/env bash
# Prints the -ldflags that stamp a binary with its version, commit and build date.
# The build date is the commit's date, so a rebuild of the same commit is byte-identical.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

commit=$(git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)
if version=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null); then
  :
elif [[ $commit != unknown ]]; then
  version="v0.0.0-$(git rev-parse --short=12 HEAD)"
  [[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || version+="-dirty"
else
  version=v0.0.0-dev
fi
date=$(git show -s --format=%cI HEAD 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)

pkg=github.com/skerry-io/skerry/pkg/version
echo "-s -w -X ${pkg}.gitVersion=${version} -X ${pkg}.gitCommit=${commit} -X ${pkg}.buildDate=${date}"
