#!/usr/bin/env bash
# Builds dist/adsync-windows-<version>.zip on Linux: everything a Windows DC without internet
# or compiler needs (docs/windows.md, "Installing from the bundle"):
#   wheels/               adsync and every runtime dependency, win_amd64, CPython 3.11-3.13
#   adsyncflt.dll         the LSA filter (make -C native/lsa_filter dll, mingw-w64)
#   install.ps1           registers the filter (native/lsa_filter/install.ps1)
#   uninstall.ps1         removes it
#   install-adsync.ps1    venv from wheels/ (no network), config skeleton, service, doctor
#   MANIFEST.txt          sha256 and path of every other file
# Usage: scripts/build-windows-bundle.sh [OUTDIR]   (env: PYTHON, EXTRAS=ldap, PYTHONS)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
EXTRAS=${EXTRAS-ldap}
PYTHONS=${PYTHONS:-3.11 3.12 3.13}
OUT=$(realpath -m "${1:-dist}")
VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE=$WORK/adsync-windows-$VERSION
mkdir -p "$STAGE/wheels" "$OUT"

echo "== adsync wheel"
# built from a copy: pip would leave build/ and *.egg-info in the checkout
mkdir "$WORK/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$WORK/src"
else
    tar --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' \
        --exclude=native/lsa_filter/build -cf - . | tar -xf - -C "$WORK/src"
fi
"$PYTHON" -m pip wheel -q --disable-pip-version-check --no-deps -w "$STAGE/wheels" "$WORK/src"
ROOT_WHEEL=$(ls "$STAGE"/wheels/adsync-"$VERSION"-*.whl)

echo "== runtime dependencies for win_amd64, CPython $PYTHONS (extras: ${EXTRAS:-none})"
args=()
for v in $PYTHONS; do args+=(--python "$v"); done
"$PYTHON" scripts/windows_wheelhouse.py "$STAGE/wheels" "$ROOT_WHEEL" --extras "$EXTRAS" "${args[@]}"

echo "== the LSA filter DLL"
make -s -C native/lsa_filter dll
cp native/lsa_filter/build/adsyncflt.dll "$STAGE/"
cp native/lsa_filter/install.ps1 native/lsa_filter/uninstall.ps1 native/lsa_filter/install-adsync.ps1 "$STAGE/"
printf '%s\n' "$EXTRAS" > "$STAGE/EXTRAS.txt"

(cd "$STAGE" && find . -type f ! -name MANIFEST.txt -printf '%P\n' | LC_ALL=C sort | xargs sha256sum > MANIFEST.txt)
ZIP=$OUT/adsync-windows-$VERSION.zip
rm -f "$ZIP"
(cd "$WORK" && zip -q -r -X "$ZIP" "adsync-windows-$VERSION")
echo "$ZIP"
