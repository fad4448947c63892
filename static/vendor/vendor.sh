#!/usr/bin/env bash
# Re-fetch the vendored front-end packages and rewrite MANIFEST.json.
#
# Run from anywhere: static/vendor/vendor.sh. Needs npm (only here, never at install or run time).
# `npm pack` checks each tarball against the registry's integrity hash. Versions are pinned on
# purpose: npm's `latest` for htmx.org is 4.x, a rewrite; the dashboard targets htmx 2.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# package  version  file inside the tarball  license file inside the tarball
PACKAGES=(
  "htmx.org 2.0.11 dist/htmx.min.js LICENSE"
  "chart.js 4.6.1 dist/chart.umd.min.js LICENSE.md"
)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

entries=()
for spec in "${PACKAGES[@]}"; do
  read -r name version file license_file <<<"$spec"
  dest="$HERE/$name-$version"
  (cd "$WORK" && npm pack --silent "$name@$version" >/dev/null)
  tarball="$WORK/$name-$version.tgz"
  mkdir -p "$WORK/$name" "$dest"
  tar -xzf "$tarball" -C "$WORK/$name"
  install -m 0644 "$WORK/$name/package/$file" "$dest/$(basename "$file")"
  install -m 0644 "$WORK/$name/package/$license_file" "$dest/$(basename "$license_file")"
  license="$(node -p "require('$WORK/$name/package/package.json').license")"
  digest="sha384-$(openssl dgst -sha384 -binary "$dest/$(basename "$file")" | openssl base64 -A)"
  entries+=("$name|$version|$license|$name-$version/$(basename "$file")|$name-$version/$(basename "$license_file")|$digest")
  echo "vendored $name@$version ($license) -> $name-$version/$(basename "$file")"
done

printf '%s\n' "${entries[@]}" | node -e '
  const lines = require("fs").readFileSync(0, "utf8").trim().split("\n");
  const packages = lines.map((line) => {
    const [name, version, license, file, license_file, sha384] = line.split("|");
    return { package: name, version, license, file, license_file, sha384 };
  });
  process.stdout.write(JSON.stringify({ packages }, null, 2) + "\n");
' >"$HERE/MANIFEST.json"
echo "wrote $HERE/MANIFEST.json"
