#!/usr/bin/env bash
# release.sh: build, sign and publish one release for the host target into a channel directory.
#
#   packaging/release.sh --channel stable|beta --key KEYFILE [--key KEYFILE2] [--out DIR]
#                        [--notes-url URL] [--bin-dir DIR] [--replace]
#
# Produces, in DIR/<channel>/ (DIR defaults to target/releases):
#   arbosync-<version>-<target>.tar.gz   signed with zipsign (ed25519ph) by every --key; the
#                                        signature's context is this exact file name, so it
#                                        cannot be renamed (or re-published as another version)
#   arbosync-<version>-<target>.tar.gz.sha256
#   manifest.json                        self_update's manifest (schema 1), entry added/updated
# Upload the channel directory as is to the server behind [update] manifest_url. Key handling
# and rotation (dual signing: pass --key twice): packaging/KEYS.md.
#
# --bin-dir DIR takes arbosync-agent and arbosync from DIR instead of `cargo build --release`.
# --replace allows re-publishing a version already in the manifest (normally refused: a version
# number must always mean the same bytes).
# Needs: cargo, tar, gzip, sha256sum, python3, and zipsign (`cargo install zipsign --locked
# --version 0.2.2`; installed automatically when missing).
set -euo pipefail

channel="" out="" notes_url="" bin_dir="" replace=no
keys=()
while [ $# -gt 0 ]; do
    case "$1" in
    --channel) channel=$2; shift 2 ;;
    --key) keys+=("$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --notes-url) notes_url=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --replace) replace=yes; shift ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "release.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
die() { echo "release.sh: $*" >&2; exit 1; }
case "$channel" in stable | beta) ;; *) die "--channel must be stable or beta" ;; esac
[ ${#keys[@]} -gt 0 ] || die "at least one --key (a zipsign private key file) is required"
for k in "${keys[@]}"; do [ -r "$k" ] || die "cannot read key $k"; done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${out:-$root/target/releases}
target=$(rustc -vV | sed -n 's/^host: //p')
version=$(cargo pkgid -p arbosync-agent | sed -E 's/.*[#@]([^#@]+)$/\1/')
[ -n "$target" ] && [ -n "$version" ] || die "cannot determine the version or the host target"
case "$version" in *-*) [ "$channel" = beta ] || die "$version is a pre-release: publish it on beta" ;; esac

if ! command -v zipsign >/dev/null; then
    echo "== installing zipsign"
    cargo install zipsign --locked --version 0.2.2
fi

name="arbosync-$version-$target"
asset="$name.tar.gz"
dest="$out/$channel"
mkdir -p "$dest"
if [ -e "$dest/$asset" ] && [ "$replace" != yes ]; then
    die "$dest/$asset exists: a version is published once (use --replace only for a release nobody installed)"
fi

if [ -z "$bin_dir" ]; then
    echo "== building $version for $target"
    cargo build --release --locked -p arbosync-agent -p arbosync-tui
    bin_dir="${CARGO_TARGET_DIR:-$root/target}/release"
fi
for b in arbosync-agent arbosync; do [ -x "$bin_dir/$b" ] || die "missing $bin_dir/$b"; done
"$bin_dir/arbosync-agent" --version | grep -q "^arbosync-agent " || die "$bin_dir/arbosync-agent does not run"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage="$work/$name"
mkdir -p "$stage/bin" "$stage/share/arbosync"
install -m 0755 "$bin_dir/arbosync-agent" "$bin_dir/arbosync" "$stage/bin/"
install -m 0755 packaging/install.sh "$stage/install.sh"
install -m 0755 packaging/arbosync-update-guard "$stage/share/arbosync/"
install -m 0644 packaging/arbosync-agent.service packaging/arbosync.sysusers packaging/arbosync-agent.tmpfile \
    packaging/agent.toml packaging/README-install.md packaging/KEYS.md "$stage/share/arbosync/"

echo "== packing $asset"
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$work" -cf - "$name" |
    gzip -9n >"$work/unsigned.tar.gz"

echo "== signing with ${#keys[@]} key(s); context = $asset"
zipsign sign tar "$work/unsigned.tar.gz" -o "$work/$asset" -c "$asset" -f "${keys[@]}"
# Verify with the public halves before publishing anything.
pubs=()
for i in "${!keys[@]}"; do
    zipsign gen-key -e "${keys[$i]}" "$work/key$i.pub"
    pubs+=("$work/key$i.pub")
done
for p in "${pubs[@]}"; do
    zipsign verify tar "$work/$asset" "$p" -c "$asset" >/dev/null || die "the signature does not verify with $p"
done

chmod 0644 "$work/$asset"
mv -f "$work/$asset" "$dest/$asset"
digest=$(sha256sum "$dest/$asset" | cut -d' ' -f1)
echo "$digest  $asset" >"$dest/$asset.sha256"

echo "== manifest $dest/manifest.json"
python3 - "$dest/manifest.json" "$version" "$asset" "$digest" "$notes_url" "$replace" <<'PY'
import datetime, json, os, sys
path, version, asset, digest, notes_url, replace = sys.argv[1:]
try:
    with open(path) as f:
        manifest = json.load(f)
except FileNotFoundError:
    manifest = {"schema": 1, "releases": []}
if manifest.get("schema") != 1:
    sys.exit(f"{path}: unsupported schema {manifest.get('schema')!r}")
releases = manifest.setdefault("releases", [])
entry = next((r for r in releases if r.get("version") == version), None)
if entry is None:
    entry = {"version": version, "assets": []}
    releases.append(entry)
entry["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
if notes_url:
    entry["notes_url"] = notes_url
assets = [a for a in entry.get("assets", []) if a.get("name") != asset]
if len(assets) != len(entry.get("assets", [])) and replace != "yes":
    sys.exit(f"{asset} is already in the manifest")
assets.append({"name": asset, "url": asset, "digest": f"sha256:{digest}"})
entry["assets"] = sorted(assets, key=lambda a: a["name"])

def key(r):
    core, _, pre = r["version"].partition("-")
    nums = tuple(int(x) for x in core.split(".")[:3])
    return (nums, pre == "", pre)
releases.sort(key=key, reverse=True)
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(manifest, f, indent=2)
    f.write("\n")
os.replace(tmp, path)
PY
echo "published $asset ($digest) on $channel in $dest"
