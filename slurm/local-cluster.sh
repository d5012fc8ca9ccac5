#!/usr/bin/env bash
# A real single-node Slurm on localhost (Debian/Ubuntu slurm-wlm + munge), for integration tests and demos.
#
#   slurm/local-cluster.sh start    # install (apt) if missing, start munged/slurmctld/slurmd, wait until idle
#   slurm/local-cluster.sh status   # exit 0 when running (prints `sinfo`), 3 when not
#   slurm/local-cluster.sh stop     # stop exactly the daemons this script started (PID files)
#
#   eval "$(slurm/local-cluster.sh start)"   # stdout is only `export SLURM_CONF=...`; messages go to stderr
#
# Needs root (the daemons run as root, no systemd, no cgroups). State, logs and slurm.conf live in
# $SLURM_LOCAL_DIR (default /tmp/igpo-kit-slurm). `start` is idempotent: when the cluster in that folder is
# already up it only prints the export line. munged is started only when no munged answers; the script then
# remembers it ($SLURM_LOCAL_DIR/munged.pid) and `stop` stops it too — never a munged it did not start.
# Environment: SLURM_LOCAL_DIR, SLURM_LOCAL_STOP_TIMEOUT (s before KILL, default 20),
#              SLURM_LOCAL_START_TIMEOUT (s to wait for the node to be idle, default 30).
set -euo pipefail

DIR="${SLURM_LOCAL_DIR:-/tmp/igpo-kit-slurm}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="$HERE/local/slurm.conf.in"
CONF="$DIR/slurm.conf"
STOP_TIMEOUT="${SLURM_LOCAL_STOP_TIMEOUT:-20}"
START_TIMEOUT="${SLURM_LOCAL_START_TIMEOUT:-30}"
PACKAGES=(munge slurmctld slurmd slurm-client)

log() { printf 'local-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# pid_of NAME -> the PID in $DIR/NAME.pid when that process is alive and is NAME (guards against PID reuse)
pid_of() {
  local name=$1 file="$DIR/$1.pid" pid comm
  [[ -s $file ]] || return 1
  pid=$(tr -dc '0-9' <"$file")
  [[ -n $pid ]] || return 1
  [[ -r /proc/$pid/comm ]] || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  [[ $comm == "$name" ]] || return 1
  echo "$pid"
}

running() { pid_of slurmctld >/dev/null && pid_of slurmd >/dev/null; }

munge_ok() { command -v munge >/dev/null && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

ensure_packages() {
  local missing=0 cmd
  for cmd in munged munge slurmctld slurmd sinfo sbatch srun squeue scancel; do
    command -v "$cmd" >/dev/null || missing=1
  done
  [[ $missing == 0 ]] && return 0
  command -v apt-get >/dev/null || die "Slurm is not installed and apt-get is unavailable"
  log "installing ${PACKAGES[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >"$DIR/apt.log" 2>&1; then
    log "apt-get install failed; running apt-get update and retrying"
    apt-get update -qq >>"$DIR/apt.log" 2>&1 || true
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >>"$DIR/apt.log" 2>&1 \
      || { tail -n 20 "$DIR/apt.log" >&2; die "could not install ${PACKAGES[*]}"; }
  fi
}

start_munge() {
  # a munged we started earlier that has died: forget it, so `stop` can never signal a reused PID
  if [[ -e $DIR/munged.pid ]] && ! pid_of munged >/dev/null; then
    rm -f "$DIR/munged.pid"
  fi
  if munge_ok; then
    return 0
  fi
  [[ -s /etc/munge/munge.key ]] || die "/etc/munge/munge.key is missing (reinstall munge or create a key)"
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge 2>/dev/null || true
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  local i pid=""
  for i in $(seq 50); do
    if [[ -s /run/munge/munged.pid ]] && munge_ok; then
      pid=$(tr -dc '0-9' </run/munge/munged.pid)
      break
    fi
    sleep 0.1
  done
  [[ -n $pid ]] || die "munged did not start"
  echo "$pid" >"$DIR/munged.pid"   # remember that this script started it
}

port_in_use() { ss -Htln 2>/dev/null | awk '{print $4}' | grep -qE "[:.]$1\$"; }

free_port() {
  local preferred=$1 avoid=${2:-} p i
  if ! port_in_use "$preferred" && [[ $preferred != "$avoid" ]]; then echo "$preferred"; return; fi
  for i in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    if ! port_in_use "$p" && [[ $p != "$avoid" ]]; then echo "$p"; return; fi
  done
  die "no free TCP port found"
}

render_conf() {
  local host cpus mem ctld_port slurmd_port
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  ctld_port=$(free_port 6817)
  slurmd_port=$(free_port 6818 "$ctld_port")
  [[ -r $TEMPLATE ]] || die "template $TEMPLATE not found"
  sed -e "s|@HOST@|$host|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM@|$mem|g" -e "s|@DIR@|$DIR|g" \
      -e "s|@CTLD_PORT@|$ctld_port|g" -e "s|@SLURMD_PORT@|$slurmd_port|g" "$TEMPLATE" >"$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
}

wait_idle() {
  local deadline=$((SECONDS + START_TIMEOUT)) state=""
  while ((SECONDS < deadline)); do
    state=$(SLURM_CONF="$CONF" sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
    [[ $state == idle || $state == mixed || $state == allocated ]] && return 0
    sleep 0.2
  done
  log "node state after ${START_TIMEOUT}s: '${state:-none}'"
  return 1
}

# stop_daemon NAME: TERM, wait up to STOP_TIMEOUT, then KILL; only the PID recorded for NAME in $DIR
stop_daemon() {
  local name=$1 pid i
  pid=$(pid_of "$name") || { rm -f "$DIR/$name.pid"; return 0; }
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    [[ -d /proc/$pid ]] || break
    sleep 0.1
  done
  if [[ -d /proc/$pid ]]; then
    log "$name did not exit after ${STOP_TIMEOUT}s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$DIR/$name.pid"
}

cmd_start() {
  [[ $(id -u) == 0 ]] || die "needs root (slurmd/slurmctld run as root here)"
  mkdir -p "$DIR"
  if running; then
    log "already running (SLURM_CONF=$CONF)"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  # a half-started cluster from an earlier run: stop what is ours, then start clean
  stop_daemon slurmd
  stop_daemon slurmctld
  ensure_packages
  start_munge
  mkdir -p "$DIR/ctld" "$DIR/d"
  render_conf
  export SLURM_CONF="$CONF"
  log "starting slurmctld and slurmd ($CONF)"
  slurmctld -f "$CONF" -c
  slurmd -f "$CONF" -N "$(hostname -s)"
  if ! wait_idle; then
    tail -n 15 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 2>/dev/null || true
    cmd_stop
    die "the node did not become idle"
  fi
  log "up: $(sinfo -h -o '%P %a %D %T %N' | head -n 1)"
  echo "export SLURM_CONF=$CONF"
}

cmd_stop() {
  if pid_of slurmctld >/dev/null && [[ -r $CONF ]]; then
    # cancel this cluster's jobs first so their steps do not outlive slurmd
    local ids
    ids=$(SLURM_CONF="$CONF" squeue -h -o '%A' 2>/dev/null | sort -u | tr '\n' ' ' || true)
    if [[ -n ${ids// /} ]]; then
      log "cancelling jobs: $ids"
      # shellcheck disable=SC2086
      SLURM_CONF="$CONF" scancel $ids 2>/dev/null || true
      for _ in $(seq 30); do
        [[ -z $(SLURM_CONF="$CONF" squeue -h -t running,completing -o '%A' 2>/dev/null) ]] && break
        sleep 0.2
      done
    fi
  fi
  stop_daemon slurmd
  stop_daemon slurmctld
  if [[ -s $DIR/munged.pid ]]; then
    stop_daemon munged
  fi
  log "stopped"
}

cmd_status() {
  local name pid rc=0
  for name in slurmctld slurmd munged; do
    if pid=$(pid_of "$name"); then
      log "$name: running (pid $pid, started by this script)"
    elif [[ $name == munged ]]; then
      if munge_ok; then log "munged: running (not started by this script)"; else log "munged: not running"; fi
    else
      log "$name: not running"
      rc=3
    fi
  done
  if [[ $rc == 0 ]]; then
    SLURM_CONF="$CONF" sinfo >&2 || rc=3
    echo "export SLURM_CONF=$CONF"
  fi
  return $rc
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 start|stop|status   (state in \$SLURM_LOCAL_DIR, default /tmp/igpo-kit-slurm)" >&2
    exit 2
    ;;
esac
