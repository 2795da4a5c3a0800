# Shared by scripts/run and scripts/test: bring up what ProjectNIL needs locally.

# ensure_postgres [URL]: a server that answers at URL (default the local one on
# 127.0.0.1:5432) is used as it is. Otherwise the local PostgreSQL cluster is
# started when it is installed but down, and how to install it explained when
# it is not; a URL naming another host that does not answer is an error.
ensure_postgres() {
  local url="${1:-postgres://postgres@127.0.0.1:5432}"
  if pg_isready -q -d "$url" 2>/dev/null; then
    return 0
  fi
  local host="${url#*://}"
  host="${host#*@}"
  host="${host%%/*}"
  host="${host%:*}"
  case "$host" in
    ""|127.0.0.1|localhost) ;;
    *)
      echo "PostgreSQL on $host does not answer (pg_isready); start it or point the URL elsewhere." >&2
      exit 1
      ;;
  esac
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "PostgreSQL is not installed: run 'sudo apt-get install -y postgresql', or point the script at a reachable server (DATABASE_URL for scripts/run, PROJECTNIL_TEST_POSTGRES for scripts/test)." >&2
    exit 1
  fi
  echo "Starting the local PostgreSQL cluster..." >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    sleep 1
  done
  echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
  exit 1
}

# Installs the AssemblyScript compiler packages from the committed lock file
# (only when they are missing or the lock changed).
ensure_compiler_packages() {
  ensure_npm_packages server/compiler
}

# Installs a directory's npm packages from its lockfile when they are missing
# or out of date.
ensure_npm_packages() {
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.lock-installed" 2>/dev/null; then
    npm ci --prefix "$dir" --no-audit --no-fund
    cp "$dir/package-lock.json" "$dir/node_modules/.lock-installed"
  fi
}

# Builds the dashboard and GraphiQL into playground/dist when the playground
# exists (same lock-file rule as the compiler).
ensure_playground() {
  local dir=playground
  [ -f "$dir/package.json" ] || return 0
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.lock-installed" 2>/dev/null; then
    npm ci --prefix "$dir" --no-audit --no-fund
    cp "$dir/package-lock.json" "$dir/node_modules/.lock-installed"
  fi
  npm run --prefix "$dir" build
}

# The browser tests drive Debian's Chromium (Playwright cannot download its own
# browser here).
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "Chromium is missing: run 'sudo apt-get install -y chromium' for the browser tests." >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
}
