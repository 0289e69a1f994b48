#!/bin/sh
# Prepares, once, a Debian root holding a newer OVN and OVS than the host's
# packages, for the sandbox to run (see sandbox/release.go):
#
#   scripts/ovn-root.sh 25.03 /var/cache/ovn-overlay/ovn-25.03
#
# 25.03 is Debian 13 (trixie)'s OVN 25.03 with OVS 3.5, unmodified. The root
# is built in a temporary directory beside DIR and renamed into place only
# when complete, so an interrupted run never leaves a half-built root that
# looks usable; concurrent runs wait for each other. About 55 s and 430 MB.
set -eu

release=${1:?usage: $0 RELEASE DIR}
dir=${2:?usage: $0 RELEASE DIR}
case "$release" in
25.03) suite=trixie ;;
*) echo "ovn-root: no Debian suite known for OVN $release (known: 25.03)" >&2; exit 2 ;;
esac
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

[ -f "$dir/.ready" ] && exit 0
parent=$(dirname "$dir")
mkdir -p "$parent"
exec 9>"$dir.lock"
flock 9
[ -f "$dir/.ready" ] && exit 0

if ! command -v debootstrap >/dev/null 2>&1; then
	echo "==> installing debootstrap"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

tmp=$(mktemp -d "$dir.tmp.XXXXXX")
# debootstrap and apt mount /proc and /sys inside the root while they run;
# whatever happens, nothing stays mounted and nothing half-built stays.
cleanup() {
	rm -f "$tmp.log"
	for m in $(awk -v p="$tmp" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

echo "==> preparing OVN $release: debootstrap $suite into $dir (about a minute, once)"
debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$tmp.log" 2>&1 || { tail -20 "$tmp.log" >&2; exit 1; }
DEBIAN_FRONTEND=noninteractive chroot "$tmp" apt-get install -y -qq --no-install-recommends \
	ovn-central ovn-host openvswitch-switch >>"$tmp.log" 2>&1 || { tail -20 "$tmp.log" >&2; exit 1; }
chroot "$tmp" dpkg-query -W -f '${Package} ${Version}\n' ovn-central ovn-host openvswitch-switch >"$tmp/.ready"
rm -f "$tmp.log"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT INT TERM
echo "==> OVN $release ready in $dir: $(tr '\n' ' ' <"$dir/.ready")"
