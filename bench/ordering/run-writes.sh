#!/usr/bin/env bash
# Publish-side comparison: plain insert vs. mechanism A vs. mechanism B.
# Usage: bench/ordering/run-writes.sh OUT_DIR   (PG* variables select the private cluster)
# For each round, each batch size, topic count and client count, the three mechanisms run back to
# back in an order that rotates from one configuration to the next (interleaved rounds). Before
# each run: the three tables are emptied, the counter table vacuumed, a checkpoint taken.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?output directory}
duration=${DURATION:-5}
rounds=${ROUNDS:-3}
mkdir -p "$out/logs"
csv="$out/writes.csv"
[ -f "$csv" ] || echo "round,mechanism,batch,topics,clients,tps,transactions,failed" >"$csv"
mechs=(plain a b)
k=0
for round in $(seq 1 "$rounds"); do
  for batch in 1 50 500; do
    for topics in 1 10; do
      for clients in 1 2 4 8; do
        for i in 0 1 2; do
          m=${mechs[$(((i + k) % 3))]}
          psql -q -v ON_ERROR_STOP=1 -c "TRUNCATE ordering.events_plain, ordering.events_a, ordering.events_b" \
            -c "VACUUM ordering.topic_heads" -c "CHECKPOINT"
          tag="r${round}-${m}-n${batch}-t${topics}-c${clients}"
          rm -rf "$out/logs/$tag"; mkdir -p "$out/logs/$tag"
          jobs=$((clients < 2 ? clients : 2))
          res=$(pgbench -n -M prepared -T "$duration" -c "$clients" -j "$jobs" -D n="$batch" -D ntopics="$topics" \
            -l --log-prefix="$out/logs/$tag/tx" -f "$here/publish-$m.sql" 2>&1)
          tps=$(sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' <<<"$res")
          txs=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$res")
          failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$res")
          echo "$round,$m,$batch,$topics,$clients,$tps,$txs,${failed:-0}" >>"$csv"
          echo "$tag tps=$tps"
        done
        k=$((k + 1))
      done
    done
  done
done
