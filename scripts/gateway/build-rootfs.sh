#!/usr/bin/env bash
# Builds, once, the Debian trixie root file system the real GreenHelix gateway runs in (Python 3.12+ with
# pydantic v2; see /work/shared/greenhelix/gateway/README.md), and prints its path as the last stdout line.
#
# The cache lives outside the clone: ${AIM_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/agent-incident-mcp}/
# gateway-rootfs-<version>. The build goes into a temporary directory beside it and is renamed into place
# only after the import check passed, so a killed build never leaves a half cache; a lock file serialises
# concurrent builds (the second waits, then finds the cache); every mount lives in a private mount
# namespace and is also unmounted on every exit. Needs root. Progress goes to stderr.
set -euo pipefail

PACKAGES=python3,python3-fastapi,python3-pydantic,python3-starlette,python3-uvicorn,python3-httpx,python3-aiosqlite,python3-cryptography,python3-jsonschema,sqlite3
SUITE=trixie
# The version names the cache: a change to the suite, the package list or this recipe's revision builds anew.
RECIPE_REVISION=1
VERSION="$SUITE-$(printf '%s|%s|%s' "$SUITE" "$PACKAGES" "$RECIPE_REVISION" | sha256sum | cut -c1-10)"

CACHE_DIR="${AIM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agent-incident-mcp}"
FINAL="$CACHE_DIR/gateway-rootfs-$VERSION"
MARKER=.aim-rootfs-ok

log() { printf '[gateway-rootfs] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ "${1:-}" == "--print-path" ]]; then
  echo "$FINAL"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot, mount)"

if [[ -f "$FINAL/$MARKER" ]]; then
  echo "$FINAL"
  exit 0
fi

# Build in a private mount namespace: the proc, sys and dev mounts (debootstrap's and ours) are then
# invisible elsewhere and vanish with the build even when it is killed outright.
if [[ "${AIM_IN_PRIVATE_MOUNT_NS:-}" != 1 ]]; then
  export AIM_IN_PRIVATE_MOUNT_NS=1
  exec unshare --mount --propagation private -- "$0" "$@"
fi

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/gateway-rootfs-$VERSION.lock"
log "waiting for the build lock $CACHE_DIR/gateway-rootfs-$VERSION.lock"
flock 9
# Another build may have finished while this one waited.
if [[ -f "$FINAL/$MARKER" ]]; then
  echo "$FINAL"
  exit 0
fi

# Unmounts every mount point at or under $1, deepest first (debootstrap mounts proc and sys itself, and
# leaves them behind when it fails).
unmount_under() {
  local root
  root=$(realpath -m "$1")
  local mounts
  mounts=$(awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r)
  local m
  for m in $mounts; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
}

# Leftovers of builds that were killed (only the lock holder builds, so any is stale): unmount, remove.
for stale in "$CACHE_DIR"/.gateway-rootfs-"$VERSION".tmp.* "$FINAL"; do
  [[ -e "$stale" ]] || continue
  log "removing the leftover of an interrupted build: $stale"
  unmount_under "$stale"
  rm -rf --one-file-system "$stale"
done

TMP="$CACHE_DIR/.gateway-rootfs-$VERSION.tmp.$$"
cleanup() {
  local rc=$?
  unmount_under "$TMP"
  if [[ -d "$TMP" ]]; then rm -rf --one-file-system "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$TMP"

# The mirror is the machine's own: the URIs of the first deb822 stanza that is not a security suite, or
# else the first plain `deb` line of sources.list. Never a hard-coded host.
mirror_from_sources() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk '
      BEGIN { RS = ""; FS = "\n" }
      {
        uri = ""; suites = ""; types = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { uri = $i; sub(/^URIs:[ \t]*/, "", uri); split(uri, u, /[ \t]+/); uri = u[1] }
          if ($i ~ /^Suites:/) suites = $i
          if ($i ~ /^Types:/) types = $i
        }
        if (uri != "" && types ~ /(^|[ \t])deb([ \t]|$)/ && suites !~ /-security/) { print uri; exit }
      }' "$f"
  done | head -n1
}
MIRROR=$(mirror_from_sources)
if [[ -z "$MIRROR" && -f /etc/apt/sources.list ]]; then
  MIRROR=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
fi
[[ -n "$MIRROR" ]] || die "no Debian mirror in /etc/apt/sources.list.d/*.sources (URIs:) or /etc/apt/sources.list"
log "mirror: $MIRROR (from the machine's apt sources)"

export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  apt-get update -q >&2
  apt-get install -y -q debootstrap >&2
fi
# Trixie's Release file is signed with the trixie archive keys. Debian 12's debian-archive-keyring
# (2023.3+deb12u1 and later) already carries them in debian-archive-keyring.gpg, so debootstrap verifies
# trixie with the host's keyring as it is (checked on Debian 12 hosts); install the package if absent.
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
if [[ ! -f "$KEYRING" ]]; then
  log "installing debian-archive-keyring (trixie signing keys)"
  apt-get update -q >&2
  apt-get install -y -q debian-archive-keyring >&2
fi

started=$(date +%s)
log "debootstrap $SUITE into $TMP (a few minutes the first time)"
# debootstrap does not resolve virtual dependencies, so configuring python3-cryptography (which depends on
# the virtual python3-cffi-backend-api-*) can fail and make debootstrap exit non-zero; the fix below then
# completes the install, and the import check decides.
debootstrap_rc=0
debootstrap --variant=minbase --keyring="$KEYRING" --include="$PACKAGES" "$SUITE" "$TMP" "$MIRROR" >&2 ||
  debootstrap_rc=$?
[[ -x "$TMP/usr/bin/apt-get" && -x "$TMP/usr/bin/python3" ]] ||
  die "debootstrap failed (exit $debootstrap_rc) before the base system and python3 were unpacked"
if [[ $debootstrap_rc -ne 0 ]]; then
  log "debootstrap exited $debootstrap_rc; completing the install inside the chroot"
fi
unmount_under "$TMP"

# The known snag: python3-cryptography's cffi backend. Install it and finish any half-configured package.
cp /etc/resolv.conf "$TMP/etc/resolv.conf"
mount -t proc proc "$TMP/proc"
mount --bind /dev "$TMP/dev"
chroot "$TMP" /usr/bin/env DEBIAN_FRONTEND=noninteractive bash -ec '
  dpkg --configure -a || true
  apt-get update -q
  apt-get install -y -q python3-cffi-backend
  apt-get -f install -y -q
  apt-get clean
' >&2

# A bare `import cryptography` passes without the backend; an Ed25519 key proves it is there.
chroot "$TMP" /usr/bin/python3 -c '
import sys
from cryptography.hazmat.primitives.asymmetric import ed25519
ed25519.Ed25519PrivateKey.generate().sign(b"x")
import fastapi, pydantic, starlette, uvicorn, httpx, aiosqlite, jsonschema
assert sys.version_info >= (3, 12), sys.version
assert pydantic.VERSION.startswith("2"), pydantic.VERSION
print("python", sys.version.split()[0], "pydantic", pydantic.VERSION, "fastapi", fastapi.__version__)
' >&2 || die "the runtime check failed: the cryptography backend or a gateway dependency is missing"
unmount_under "$TMP"
# A debootstrap that ended in a configure failure leaves its work folder behind.
rm -rf "$TMP/debootstrap"

echo "$VERSION" >"$TMP/$MARKER"
mv -T "$TMP" "$FINAL"
log "built $FINAL in $(($(date +%s) - started)) s"
echo "$FINAL"
