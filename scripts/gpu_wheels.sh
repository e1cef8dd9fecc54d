#!/usr/bin/env bash
# Downloads, here, the wheels boxpose needs on a GPU machine that has a stock PyTorch image but no package
# index (CPython 3.12, manylinux x86-64), then checks the set:
#
#     scripts/gpu_wheels.sh .whl
#     python3 scripts/gpu_check.py --wheels .whl      # there: installs them, then boxpose, then checks
#
# The device machine's image (/work/.library/device/KINDS.md) already holds torch, torchvision, numpy,
# scipy, opencv-python-headless, tensorboard, tqdm, matplotlib, ninja, pyyaml, packaging, setuptools,
# pytest and hypothesis; it lacks hydra-core, omegaconf, antlr4-python3-runtime and pycocotools.
# Versions: constraints.txt's pins; antlr4-python3-runtime 4.9.3 (hydra-core and omegaconf need 4.9.*;
# it is published as an sdist only, so it is built into a pure-Python wheel here).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: scripts/gpu_wheels.sh DIR   (DIR: where to put the wheels, e.g. .whl)" >&2
    exit 2
fi
DIR=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
ANTLR_VERSION=4.9.3

pin() {  # the version constraints.txt pins for a distribution
    local version
    version=$(sed -n "s/^$1==//p" "$ROOT/constraints.txt")
    if [ -z "$version" ]; then
        echo "gpu_wheels.sh: constraints.txt pins no version of $1" >&2
        exit 1
    fi
    echo "$version"
}

mkdir -p "$DIR"
rm -f "$DIR"/*.whl  # one version of each: two would stop the install on the GPU machine

"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any \
    -d "$DIR" \
    "hydra-core==$(pin hydra-core)" "omegaconf==$(pin omegaconf)" "pycocotools==$(pin pycocotools)"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$DIR" \
    "antlr4-python3-runtime==$ANTLR_VERSION"

# The check: exactly the four distributions, one wheel each, every tag installable on CPython 3.12
# manylinux x86-64; then the pure-Python ones import here and pycocotools' extension is the abi3 or
# cp312 build.
"$PYTHON" - "$DIR" <<'EOF'
import sys
from pathlib import Path

from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

# What pip on CPython 3.12, Linux x86-64 with glibc up to 2.39 accepts.
platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(39, 4, -1)]
platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
supported = set(cpython_tags((3, 12), platforms=platforms)) | set(
    compatible_tags((3, 12), interpreter="cp312", platforms=platforms)
)
wheel_dir = Path(sys.argv[1])
expected = {"hydra-core", "omegaconf", "antlr4-python3-runtime", "pycocotools"}
found: dict[str, list[str]] = {}
for wheel in sorted(wheel_dir.glob("*.whl")):
    name, version, _, tags = parse_wheel_filename(wheel.name)
    found.setdefault(str(name), []).append(wheel.name)
    if not tags & supported:
        sys.exit(f"gpu_wheels.sh: {wheel.name} does not install on CPython 3.12 manylinux x86-64")
    size = wheel.stat().st_size
    print(f"  {wheel.name}  ({size / 1024:.0f} KiB)")
missing = expected - set(found)
extra = set(found) - expected
doubles = [names for names in found.values() if len(names) > 1]
if missing or extra or doubles:
    sys.exit(f"gpu_wheels.sh: wheel set is wrong: missing {sorted(missing)}, unexpected {sorted(extra)}, "
             f"several versions {doubles}")
total = sum(w.stat().st_size for w in wheel_dir.glob("*.whl"))
print(f"gpu_wheels.sh: {len(found)} wheels, {total / 2**20:.2f} MiB in {wheel_dir}")
EOF

SITE=$(mktemp -d)
trap 'rm -rf "$SITE"' EXIT
"$PYTHON" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile \
    --target "$SITE" "$DIR"/hydra_core-*.whl "$DIR"/omegaconf-*.whl "$DIR"/antlr4_python3_runtime-*.whl
PYTHONPATH=$SITE "$PYTHON" -c "
import hydra, omegaconf, antlr4
from omegaconf import OmegaConf
for module in (hydra, omegaconf, antlr4):
    assert module.__file__.startswith('$SITE'), module.__file__
assert OmegaConf.create({'a': '\${b}', 'b': 1}).a == 1
print('gpu_wheels.sh: hydra', hydra.__version__, 'omegaconf', omegaconf.__version__, 'import here')
"
echo "gpu_wheels.sh: done. On the GPU machine: python3 scripts/gpu_check.py --wheels $DIR"
