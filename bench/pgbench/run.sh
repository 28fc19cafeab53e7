#!/usr/bin/env bash
# The PostgreSQL side of batched usage ingestion, without HTTP or kelviq:
# pgbench runs the usage writers' statement (160 events per statement, 4
# clients on disjoint customer ranges, as the server's 4 writers are) and
# variants of it against a scratch database, in interleaved rounds.
#   statement              the statement kelviq sent before migration 0011 (events, counter
#                          upserts, change row; the tenant as org id text + environment)
#   integer-tenant         the usage tenant as one BIGINT, as kelviq sends it since migration 0011
#   integer-tenant-events  the same for the events only
#   no-counters            events only: the ceiling of deferring counters
#   update-counters        counters by UPDATE … FROM (the upsert only for missing rows)
#   deferred               counters as rows of an unindexed table, emptied by fold.sql
#   statement-pending      a statement's counter additions as one row (JSON), emptied
#                          by fold-statements.sql
# The two folded variants run their fold alongside, FOLDS per second requested.
# Each line also gives the write-ahead log written per event (records, bytes,
# full-page images), from pg_stat_wal: the whole server's, so keep it quiet.
# Usage: bench/pgbench/run.sh [seconds per run] [rounds]   (needs psql and pgbench)
#   VARIANTS="statement no-counters" FOLDS=40 bench/pgbench/run.sh 10 3
set -euo pipefail
cd "$(dirname "$0")"
url_host="${PGHOST:-127.0.0.1}"
seconds="${1:-12}"
rounds="${2:-2}"
variants="${VARIANTS:-statement integer-tenant integer-tenant-events no-counters update-counters deferred statement-pending}"
folds="${FOLDS:-40}"
db="kq_pgbench_$$"
psql() { command psql -h "$url_host" -U postgres -X -q "$@"; }
psql -d postgres -c "CREATE DATABASE $db"
trap 'psql -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; rm -f "/tmp/$db".*' EXIT
psql -d "$db" -f schema.sql 2>/dev/null
wal() { psql -d "$db" -Atc "SELECT wal_records || ' ' || wal_fpi || ' ' || wal_bytes FROM pg_stat_wal"; }
for round in $(seq "$rounds"); do
  for v in $variants; do
    psql -d "$db" -c "TRUNCATE usage_events, ev2, change_feed, pending, statement_pending"
    fold=""
    case "$v" in
      deferred) fold=fold ;;
      statement-pending) fold=fold-statements ;;
    esac
    read -r r0 f0 b0 <<<"$(wal)"
    if [ -n "$fold" ]; then
      pgbench -h "$url_host" -U postgres -n -c 1 -R "$folds" -T "$seconds" -f "$fold.sql" "$db" >"/tmp/$db.fold" 2>&1 &
    fi
    pgbench -h "$url_host" -U postgres -n -c 4 -j 2 -T "$seconds" -f "$v.sql" "$db" >"/tmp/$db.run" 2>&1
    extra=""
    if [ -n "$fold" ]; then
      wait
      extra=" ($(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "/tmp/$db.fold") folds/s)"
    fi
    read -r r1 f1 b1 <<<"$(wal)"
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "/tmp/$db.run")
    done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "/tmp/$db.run")
    printf 'round %s  %-22s %8.1f statements/s  %8.0f events/s  WAL per event: %s%s\n' "$round" "$v" "$tps" \
      "$(awk -v t="$tps" 'BEGIN { print t * 160 }')" \
      "$(awk -v n="$done_tx" -v r=$((r1 - r0)) -v f=$((f1 - f0)) -v b=$((b1 - b0)) \
        'BEGIN { e = n * 160; if (e == 0) e = 1; printf "%.2f records, %.0f bytes, %.4f page images", r / e, b / e, f / e }')" \
      "$extra"
  done
done
