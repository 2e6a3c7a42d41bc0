#!/usr/bin/env bash
# A one-node SLURM cluster on localhost for the queue tests (issue 8).
#   .ci/slurm.sh install   Debian packages slurmctld slurmd slurm-client munge (root)
#   .ci/slurm.sh start     munged + slurmctld + slurmd with a generated configuration in $DIR
#   .ci/slurm.sh stop      stop the daemons started here
#   .ci/slurm.sh status    sinfo of the test cluster
# $DIR (default /tmp/deepqs-slurm) holds slurm.conf, gres.conf, state, logs and env.sh, which
# exports SLURM_CONF for clients (sbatch, squeue, scancel).  The node declares 2 GPUs (GRES)
# backed by fake device files: enough for SLURM to schedule GPU jobs and set
# CUDA_VISIBLE_DEVICES; there is no real GPU behind them.
set -euo pipefail
DIR="${DEEPQS_SLURM_DIR:-/tmp/deepqs-slurm}"
HOST="$(hostname -s)"

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null; then
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null
}

start() {
    mkdir -p "$DIR"/state "$DIR"/spool "$DIR"/log
    # munge: a key, its folders, the daemon (root may run it with --force)
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    if ! pgrep -x munged >/dev/null; then
        if id munge >/dev/null 2>&1; then
            su -s /bin/sh munge -c "munged" 2>/dev/null || munged --force
        else
            munged --force
        fi
    fi
    # fake GPU device files for GRES (character devices when mknod is allowed)
    for i in 0 1; do
        [ -e "$DIR/gpu$i" ] || mknod "$DIR/gpu$i" c 195 "$i" 2>/dev/null || touch "$DIR/gpu$i"
    done
    local cpus mem
    cpus="$(nproc)"
    mem="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))"
    cat > "$DIR/slurm.conf" <<CONF
ClusterName=deepqs-ci
SlurmctldHost=$HOST(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
GresTypes=gpu
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
    cat > "$DIR/gres.conf" <<CONF
NodeName=$HOST Name=gpu File=$DIR/gpu[0-1]
CONF
    echo "export SLURM_CONF=$DIR/slurm.conf" > "$DIR/env.sh"
    export SLURM_CONF="$DIR/slurm.conf"
    stop_daemons quiet
    slurmctld -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF"
    for _ in $(seq 1 30); do
        if sinfo -h -o "%T" 2>/dev/null | grep -qE "^(idle|mixed|allocated)"; then
            echo "SLURM up: $(sinfo -h -o '%N %c CPUs %G %T')"
            return 0
        fi
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        sleep 1
    done
    echo "SLURM did not come up; logs in $DIR/log" >&2
    tail -n 20 "$DIR"/log/*.log >&2 || true
    return 1
}

stop_daemons() {
    for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
        if [ -s "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
            rm -f "$pidfile"
        fi
    done
    [ "${1:-}" = quiet ] || echo "SLURM stopped"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop_daemons ;;
    status) SLURM_CONF="$DIR/slurm.conf" sinfo ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
