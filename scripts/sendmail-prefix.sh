#!/usr/bin/env bash
# Unpack Debian's sendmail binary and its cf/m4 files into a private directory, without
# installing the sendmail packages (Postfix is the system's mail transport and conflicts with
# them). The test library sealgate/lab/sendmail.py runs that binary with its own configuration.
# Idempotent: a complete prefix is left alone. Works as root or as a user with sudo (sudo is
# only needed to install m4, missing shared libraries, or to refresh the package lists).
# Usage: scripts/sendmail-prefix.sh [TARGET]   (default: .cache/sendmail in the repository)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${1:-$here/../.cache/sendmail}"
mkdir -p "$(dirname "$target")"
target="$(cd "$(dirname "$target")" && pwd)/$(basename "$target")"
binary="usr/libexec/sendmail/sendmail"
stamp="$target/.sealgate-prefix"

if [ -f "$stamp" ] && [ -x "$target/$binary" ] && [ -f "$target/usr/share/sendmail/cf/m4/cf.m4" ]; then
  # Still make sure m4 (to build a .cf) is there: it is a system package that may have gone.
  "$here/system-packages.sh" m4
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/sendmail-prefix.XXXXXX")"
# Unpacked beside the target, so that the final rename is atomic (same file system).
staging="$(mktemp -d "$target.partial.XXXXXX")"
trap 'rm -rf "$work" "$staging"' EXIT
# As root, apt-get download drops to the _apt user, which must be able to write here.
if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
  chown _apt "$work"
fi

download() {
  (cd "$work" && apt-get download -qq sendmail-bin sendmail-cf)
}
if ! download; then
  # Probably stale or missing package lists: refresh them once (needs root) and retry.
  echo "apt-get download failed; refreshing the package lists and retrying" >&2
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo for apt-get update" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  download
fi

for deb in "$work"/sendmail-bin_*.deb "$work"/sendmail-cf_*.deb; do
  dpkg-deb -x "$deb" "$staging"
done
# The Debian binary is setgid mail; a private copy needs no privilege of its own.
find "$staging" -type f -perm /6000 -exec chmod ug-s {} +
rm -rf "$staging/etc" "$staging/var" "$staging/usr/share/doc" "$staging/usr/share/man"

# m4 builds the .cf. dpkg-deb -x resolves no dependencies: if the binary misses a shared
# library, install the libraries sendmail-bin depends on (only those not installed yet).
libraries=""
if ldd "$staging/$binary" | grep -q 'not found'; then
  libraries="$(dpkg-deb -f "$work"/sendmail-bin_*.deb Depends | tr ',' '\n' \
    | sed -E 's/^ *//; s/[ (].*//' | grep -E '^lib' || true)"
fi
# shellcheck disable=SC2086
"$here/system-packages.sh" m4 $libraries
missing="$(ldd "$staging/$binary" | grep 'not found' || true)"
if [ -n "$missing" ]; then
  echo "sendmail still misses shared libraries:" >&2
  echo "$missing" >&2
  exit 1
fi
if ! grep -aq 'Milter (%s): quit filter' "$staging/$binary"; then
  echo "this sendmail binary was built without milter support" >&2
  exit 1
fi

dpkg-deb -f "$work"/sendmail-bin_*.deb Package Version > "$staging/.sealgate-prefix"
chmod 755 "$staging"
# Replace any half-made earlier attempt; the stamp marks a complete prefix.
rm -rf "$target"
mv -T "$staging" "$target" || [ -f "$stamp" ]  # a concurrent run may have won
echo "sendmail unpacked in $target ($(sed -n 's/^Version: //p' "$stamp"))"
