#!/bin/sh
# install.sh: install arbosync from a release tarball into /opt/arbosync (run as root from the
# unpacked arbosync-<version>-<target>/ directory). Packages (.deb) are preferred: there the
# binaries belong to root and updates are swapped by a root unit. In a tarball install the agent
# updates itself in place, so /opt/arbosync/bin belongs to the arbosync user.
#
#   sudo ./install.sh [--no-start]
#
# Idempotent: running it again (e.g. from a newer tarball) replaces the binaries and the unit and
# keeps /etc/arbosync/agent.toml and /var/lib/arbosync.
set -eu

prefix=/opt/arbosync
start=yes
for arg in "$@"; do
    case "$arg" in
    --no-start) start=no ;;
    -h | --help)
        sed -n '2,11p' "$0"
        exit 0
        ;;
    *)
        echo "install.sh: unknown argument $arg" >&2
        exit 2
        ;;
    esac
done

here=$(cd "$(dirname "$0")" && pwd)
share="$here/share/arbosync"
die() {
    echo "install.sh: $*" >&2
    exit 1
}
[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$here/bin/arbosync-agent" ] || die "no bin/arbosync-agent next to this script"
"$here/bin/arbosync-agent" --version >/dev/null || die "bin/arbosync-agent does not run on this machine"

echo "== user and group arbosync"
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers "$share/arbosync.sysusers"
elif ! getent passwd arbosync >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/arbosync --shell /usr/sbin/nologin \
        --comment "arbosync sync agent" arbosync
fi

echo "== $prefix"
install -d -m 0755 -o root -g root "$prefix" "$prefix/lib"
# The agent swaps its own binaries here (ReadWritePaths=/opt/arbosync/bin in the unit).
install -d -m 0755 -o arbosync -g arbosync "$prefix/bin"
for name in arbosync-agent arbosync; do
    [ -f "$here/bin/$name" ] || continue
    install -m 0755 -o arbosync -g arbosync "$here/bin/$name" "$prefix/bin/.$name.new"
    mv -f "$prefix/bin/.$name.new" "$prefix/bin/$name"
    ln -sf "$prefix/bin/$name" "/usr/local/bin/$name"
done
install -m 0755 -o root -g root "$share/arbosync-update-guard" "$prefix/lib/arbosync-update-guard"
install -d -m 0755 "$prefix/share"
for f in README-install.md KEYS.md; do
    [ -f "$share/$f" ] && install -m 0644 "$share/$f" "$prefix/share/$f"
done

echo "== configuration and directories"
install -d -m 0750 -o root -g arbosync /etc/arbosync
if [ ! -e /etc/arbosync/agent.toml ]; then
    install -m 0640 -o root -g arbosync "$share/agent.toml" /etc/arbosync/agent.toml
else
    echo "keeping the existing /etc/arbosync/agent.toml"
fi
install -m 0644 "$share/arbosync-agent.tmpfile" /etc/tmpfiles.d/arbosync.conf
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create /etc/tmpfiles.d/arbosync.conf
else
    install -d -m 0750 -o arbosync -g arbosync /var/lib/arbosync /var/log/arbosync
fi

echo "== systemd unit"
# The packaged unit with /opt paths: the guard runs as the agent (no "+"; the agent owns
# /opt/arbosync/bin anyway), and the binary directory is writable for in-place updates.
sed -e "s|^ExecStartPre=+/usr/lib/arbosync/arbosync-update-guard .*|ExecStartPre=$prefix/lib/arbosync-update-guard /var/lib/arbosync/update $prefix/bin /var/lib/arbosync/update|" \
    -e "s|^ExecStart=/usr/bin/arbosync-agent |ExecStart=$prefix/bin/arbosync-agent |" \
    -e "s|^Documentation=.*|Documentation=file://$prefix/share/README-install.md|" \
    -e "/^ExecStart=/a ReadWritePaths=$prefix/bin" \
    "$share/arbosync-agent.service" >/etc/systemd/system/arbosync-agent.service.new
mv -f /etc/systemd/system/arbosync-agent.service.new /etc/systemd/system/arbosync-agent.service

"$prefix/bin/arbosync-agent" check-config --config /etc/arbosync/agent.toml ||
    echo "install.sh: fix /etc/arbosync/agent.toml before starting the service" >&2

if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if [ "$start" = yes ]; then
        systemctl enable --now arbosync-agent.service
    else
        systemctl enable arbosync-agent.service
    fi
    systemctl --no-pager status arbosync-agent.service || true
else
    echo "systemd is not running here: the unit is installed but not started"
fi
echo "installed $("$prefix/bin/arbosync-agent" --version) into $prefix"
