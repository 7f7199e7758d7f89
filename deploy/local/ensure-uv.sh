#!/usr/bin/env bash
# Print the path of a uv binary, installing uv from PyPI into the user's site first if needed.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
uv_bin="$(python3 -m site --user-base)/bin/uv"
if [[ ! -x "$uv_bin" ]]; then
  # Debian's own python3 refuses user installs unless told (PEP 668); pyenv's accepts them.
  python3 -m pip install --quiet --user uv >&2 ||
    python3 -m pip install --quiet --user --break-system-packages uv >&2
fi
echo "$uv_bin"
