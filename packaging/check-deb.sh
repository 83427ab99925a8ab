#!/usr/bin/env bash
# check-deb.sh: build the .deb and check what is in it (CI). Usage:
#   packaging/check-deb.sh [--profile dev|release]
# Expects the binaries to be built already for that profile
# (`cargo build [--release] -p arbosync-agent -p arbosync-tui`), and cargo-deb installed
# (`cargo install cargo-deb --locked --version 3.8.0`), and systemd-analyze (package systemd).
set -euo pipefail
profile=release
[ "${1:-}" = --profile ] && profile=$2
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail() { echo "check-deb: $*" >&2; exit 1; }

echo "== systemd-analyze security (exposure must be <= 2.0)"
for unit in packaging/arbosync-agent.service packaging/arbosync-agent-update.service; do
    line=$(systemd-analyze security --offline=true "$unit" | grep 'Overall exposure level')
    echo "$line"
    score=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
    awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "$unit: exposure $score > 2.0"
done

echo "== cargo deb ($profile)"
cargo deb -p arbosync-agent --no-build --profile "$profile" -o "$out/" >/dev/null
deb=$(ls "$out"/arbosync_*.deb)
echo "$deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'
contents=$(dpkg-deb --contents "$deb" | awk '{print $1, $6}')
expect() { # mode path
    grep -qxF -e "$1 ./$2" <<<"$contents" || fail "missing or wrong mode: $1 $2"
}
expect -rwxr-xr-x usr/bin/arbosync-agent
expect -rwxr-xr-x usr/bin/arbosync
expect -rw-r----- etc/arbosync/agent.toml
expect -rw-r--r-- usr/lib/systemd/system/arbosync-agent.service
expect -rw-r--r-- usr/lib/systemd/system/arbosync-agent-update.service
expect -rw-r--r-- usr/lib/systemd/system/arbosync-agent-update.path
expect -rw-r--r-- usr/lib/sysusers.d/arbosync.conf
expect -rw-r--r-- usr/lib/tmpfiles.d/arbosync-agent.conf
expect -rwxr-xr-x usr/lib/arbosync/arbosync-update-guard
expect -rwxr-xr-x usr/lib/arbosync/arbosync-update-swap
expect -rw-r--r-- usr/share/doc/arbosync/README-install.md
expect -rw-r--r-- usr/share/doc/arbosync/KEYS.md
expect -rw-r--r-- usr/share/doc/arbosync/postgres-roles.sql

ctl="$out/control"
dpkg-deb --control "$deb" "$ctl"
grep -qxF /etc/arbosync/agent.toml "$ctl/conffiles" || fail "agent.toml is not a conffile"
grep -q 'systemd-sysusers' "$ctl/postinst" || fail "postinst does not create the user"
grep -q 'deb-systemd-helper enable arbosync-agent.service' "$ctl/postinst" || fail "the service is not enabled"
grep -q 'arbosync-agent-update.path' "$ctl/postinst" || fail "the update path unit is not enabled"
for s in postinst prerm postrm; do sh -n "$ctl/$s" || fail "$s is not valid sh"; done

echo "== the packaged binaries run, the packaged example config is valid"
dpkg-deb -x "$deb" "$out/root"
"$out/root/usr/bin/arbosync-agent" --version
"$out/root/usr/bin/arbosync" --version
"$out/root/usr/bin/arbosync-agent" check-config --config "$out/root/etc/arbosync/agent.toml"
echo "check-deb: ok"
