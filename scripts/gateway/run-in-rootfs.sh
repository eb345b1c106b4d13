#!/usr/bin/env bash
# Runs one command of the real gateway's runtime inside the cached root file system:
#   run-in-rootfs.sh ROOTFS SOURCE_DIR DATA_DIR -- COMMAND...
# inside the chroot the gateway's source is /run/aim/src (the working directory), its data directory
# /run/aim/data (A2A_DATA_DIR), and this folder /run/aim/tools.
#
# Every mount is made in a private mount namespace (unshare), so no other process sees them and they
# vanish with the last process in it, even after a SIGKILL; the shared root file system is never
# changed. The command replaces this shell (exec), so its pid is the one the caller spawned and signals.
set -euo pipefail

if [[ $# -lt 5 || "$4" != "--" ]]; then
  echo "usage: $0 ROOTFS SOURCE_DIR DATA_DIR -- COMMAND..." >&2
  exit 2
fi
ROOTFS=$(realpath "$1")
SRC=$(realpath "$2")
DATA=$(realpath "$3")
shift 4
TOOLS=$(dirname "$(realpath "$0")")

[[ -f "$ROOTFS/.aim-rootfs-ok" ]] || { echo "not a built gateway root file system: $ROOTFS" >&2; exit 2; }

if [[ "${AIM_IN_PRIVATE_MOUNT_NS:-}" != 1 ]]; then
  export AIM_IN_PRIVATE_MOUNT_NS=1
  exec unshare --mount --propagation private -- "$0" "$ROOTFS" "$SRC" "$DATA" -- "$@"
fi

mount -t proc proc "$ROOTFS/proc"
mount --bind /dev "$ROOTFS/dev"
# /run of the shared root file system stays untouched: a private tmpfs holds this run's mount points.
mount -t tmpfs -o mode=0755 tmpfs "$ROOTFS/run"
mkdir -p "$ROOTFS/run/aim/src" "$ROOTFS/run/aim/data" "$ROOTFS/run/aim/tools"
mount --bind "$SRC" "$ROOTFS/run/aim/src"
mount --bind "$DATA" "$ROOTFS/run/aim/data"
mount --bind "$TOOLS" "$ROOTFS/run/aim/tools"
mount -o remount,bind,ro "$ROOTFS/run/aim/tools"

cd "$ROOTFS/run/aim/src"
exec chroot "$ROOTFS" /usr/bin/env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
  A2A_ENV=sandbox A2A_DATA_DIR=/run/aim/data \
  /bin/sh -c 'cd /run/aim/src && exec "$@"' sh "$@"
