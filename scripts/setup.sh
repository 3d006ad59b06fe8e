# Sourced by scripts/demo and scripts/test: brings a fresh Debian machine with Python 3.11 to a working
# checkout - system packages (Mosquitto, promtool, Alertmanager; Chromium, a Chinese font and Node.js for the tests),
# the virtualenv in .venv and the tests' OpenID Connect provider (npm) - doing only what is missing, so a second run costs a second.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ensure_debian_packages() {
  # $@: pairs of "command:package"; installs the packages whose command is missing. A command that is an absolute
  # path stands for a file the package installs (a font has no command).
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || [ -x "/usr/bin/${pair%%:*}" ] \
      || { [[ "${pair%%:*}" == /* ]] && [ -e "${pair%%:*}" ]; } || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "missing Debian packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}"
    sudo="sudo"
  fi
  say "Installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq || die "apt-get update failed; check the machine's package sources"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

ensure_venv() {
  local python="${PYTHON:-}"
  if [ -z "$python" ]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
      if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        python="$candidate"; break
      fi
    done
  fi
  [ -n "$python" ] || die "edgefleet needs Python >= 3.11; install it (apt-get install python3) or set PYTHON=/path/to/python3.11"
  if [ ! -x "$VENV/bin/python" ]; then
    say "Creating virtualenv in $VENV"
    "$python" -m venv "$VENV" 2>/dev/null || { ensure_debian_packages "false:python3-venv"; "$python" -m venv "$VENV"; } \
      || die "cannot create a virtualenv with $python"
  fi
  local stamp="$VENV/.edgefleet-installed" want
  want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "Installing edgefleet and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]" || die "pip install failed (see above)"
    echo "$want" > "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

ensure_node_modules() {
  # The sign-in tests' OpenID Connect provider (oidc-provider, npm) in tests/support/oidc/, as its lock pins it.
  local dir="$ROOT/tests/support/oidc"
  [ -f "$dir/node_modules/oidc-provider/package.json" ] && return 0
  ensure_debian_packages node:nodejs npm:npm
  say "Installing the test OpenID Connect provider (npm ci in tests/support/oidc)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci in $dir failed (see above)"
}
