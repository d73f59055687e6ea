#!/usr/bin/env bash
# Installs the Debian packages listed in deploy/packages.txt that are missing.
# Idempotent and silent when everything is present. Runs apt-get as root,
# through sudo otherwise. `apt-get update` runs only when something is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
list="${1:-$here/packages.txt}"

die() { echo "install-deps: $*" >&2; exit 1; }

[[ -r "$list" ]] || die "cannot read package list $list"
command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script supports Debian/Ubuntu only"

mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$')
[[ ${#wanted[@]} -gt 0 ]] || die "no packages listed in $list"

missing=()
for pkg in "${wanted[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == ii* ]] || missing+=("$pkg")
done

[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    die "need root or sudo to install: ${missing[*]}"
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq || die "apt-get update failed"
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"

# Debian's postgresql package starts a cluster on port 5432 when installed;
# orderflow runs its own clusters (deploy/pg.sh), so that one is left alone.
echo "install-deps: done" >&2
