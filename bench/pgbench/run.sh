#!/usr/bin/env bash
# The PostgreSQL side of batched usage ingestion, without HTTP or kelviq:
# pgbench runs the usage writers' statement (160 events per statement, 4
# clients on disjoint customer ranges, as the server's 4 writers are) and
# variants of it against a scratch database, in interleaved rounds.
#   statement              the statement kelviq sends (events, counter upserts, change row)
#   integer-tenant         usage tenant as one BIGINT instead of org id text + environment
#   integer-tenant-events  the same for the events only
#   no-counters            events only: the ceiling of deferring counters
#   deferred               counters as rows of an unindexed table, emptied by fold.sql
#                          (run alongside at 40 folds/s requested)
# Usage: bench/pgbench/run.sh [seconds per run] [rounds]   (needs psql and pgbench)
set -euo pipefail
cd "$(dirname "$0")"
url_host="${PGHOST:-127.0.0.1}"
seconds="${1:-12}"
rounds="${2:-2}"
db="kq_pgbench_$$"
psql() { command psql -h "$url_host" -U postgres -X -q "$@"; }
psql -d postgres -c "CREATE DATABASE $db"
trap 'psql -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
psql -d "$db" -f schema.sql 2>/dev/null
run() { pgbench -h "$url_host" -U postgres -n -c 4 -j 2 -T "$seconds" -f "$1.sql" "$db" 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
for round in $(seq "$rounds"); do
  for v in statement integer-tenant integer-tenant-events no-counters deferred; do
    psql -d "$db" -c "TRUNCATE usage_events, ev2, change_feed, pending"
    if [ "$v" = deferred ]; then
      pgbench -h "$url_host" -U postgres -n -c 1 -R 40 -T "$seconds" -f fold.sql "$db" >"/tmp/$db.fold" 2>&1 &
      tps=$(run "$v"); wait
      folds=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "/tmp/$db.fold"); rm -f "/tmp/$db.fold"
      extra=" ($folds folds/s)"
    else
      tps=$(run "$v"); extra=""
    fi
    printf 'round %s  %-22s %8.1f statements/s  %8.0f events/s%s\n' "$round" "$v" "$tps" "$(awk -v t="$tps" 'BEGIN { print t * 160 }')" "$extra"
  done
done
