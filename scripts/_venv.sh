# Sourced by the scripts: create or reuse .venv and install the project into it.
# ensure_venv [dev]  -- with "dev", the test tools too. Reinstalls only when pyproject.toml, setup.py
# or the C source of the optional extension (crypto/_sha256native.c, built in place) changed.
ensure_venv() {
  local extra="${1:-}" py="${PYTHON:-python3}" spec="." stamp
  [ -n "$extra" ] && spec=".[$extra]"
  if [ ! -x .venv/bin/python ]; then
    "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
      || { echo "Python >= 3.11 is required (found $("$py" --version 2>&1))" >&2; exit 1; }
    "$py" -m venv .venv
  fi
  stamp=".venv/.installed-${extra:-base}"
  # A dev install includes the base one.
  [ -z "$extra" ] && [ ! -f "$stamp" ] && [ -f .venv/.installed-dev ] && stamp=.venv/.installed-dev
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
    || [ crypto/_sha256native.c -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
    touch "$stamp"
  fi
}
