#!/usr/bin/env bash
# Add mace-torch (the `mace` model of the zoo) to an environment that has crystalspace[mace].
#
# Every mace-torch release pins e3nn==0.4.4; crystalspace pins e3nn==0.6.0 (its own equivariant
# models and sevenn need e3nn>=0.5), so pip cannot resolve both. The modules the zoo uses run on
# e3nn 0.6.0 (tests/unit/mlff/test_models.py -k mace), so mace-torch goes in without its
# dependencies: the `mace` extra carries all of them but e3nn. Afterwards `pip check` must report
# nothing but that one pin.
#
#   pip install -e ".[dev]"      # or: pip install "crystalspace[mace]"
#   tools/install_mace.sh        # PIP=/path/to/pip to pick another environment
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
MACE=mace-torch==0.3.16
"$PIP" install -q --disable-pip-version-check --no-deps "$MACE" 2> >(grep -v "^WARNING: Location" >&2)
if ! err=$("$(dirname "$PIP")/python" -c "import mace.modules" 2>&1 >/dev/null); then
    echo "mace-torch installed but does not import ($(tail -n 1 <<<"$err")):" \
        "install crystalspace[mace] into this environment first" >&2
    exit 1
fi
report=$("$PIP" check --disable-pip-version-check 2>&1 || true)
other=$(grep -v -e "^mace-torch 0.3.16 has requirement e3nn==0.4.4, but you have e3nn 0.6.0.$" \
    -e "^No broken requirements found.$" <<<"$report" || true)
if [ -n "$other" ]; then
    echo "pip check, beside mace-torch's e3nn pin:" >&2
    echo "$other" >&2
    exit 1
fi
echo "installed $MACE beside e3nn 0.6.0 (pip check: only mace-torch's e3nn==0.4.4 pin is unmet)"
