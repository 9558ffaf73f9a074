#!/usr/bin/env bash
# Reader-side comparison over 1,000,000 events (10 topics, publishes of 500 events from 2 clients,
# the same statements as run-writes.sh), with a ticker taking a snapshot every 0.5 s meanwhile.
# Usage: bench/ordering/run-reads.sh OUT_DIR   (PG* variables select the private cluster)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?output directory}
mkdir -p "$out"
psql -q -v ON_ERROR_STOP=1 -f "$here/batch-sql.sql"
psql -q -v ON_ERROR_STOP=1 -c "TRUNCATE ordering.events_a, ordering.events_b, ordering.events_plain, ordering.ticks" \
  -c "UPDATE ordering.topic_heads SET position = 0" -c "VACUUM ordering.topic_heads"

pgbench -n -M prepared -t "${LOAD_TX:-1000}" -c 2 -j 2 -D n=500 -D ntopics=10 -f "$here/publish-a.sql" >"$out/load-a.txt" 2>&1
# The ticker runs while B's events go in (PgQ's pgq.ticker stores txid_current_snapshot() the same way).
printf '%s\n' "INSERT INTO ordering.ticks DEFAULT VALUES" '\watch 0.5' | psql -q >/dev/null &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT
pgbench -n -M prepared -t "${LOAD_TX:-1000}" -c 2 -j 2 -D n=500 -D ntopics=10 -f "$here/publish-b.sql" >"$out/load-b.txt" 2>&1
sleep 1
kill $ticker; trap - EXIT
psql -q -c "VACUUM ANALYZE ordering.events_a" -c "VACUUM ANALYZE ordering.events_b" -c "VACUUM ANALYZE ordering.ticks"

{
  echo "-- sizes"
  psql -Atc "SELECT 'events_a rows', count(*) FROM ordering.events_a" \
    -c "SELECT 'events_b rows', count(*) FROM ordering.events_b" \
    -c "SELECT 'ticks', count(*) FROM ordering.ticks" \
    -c "SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relname IN ('events_a', 'events_b', 'events_a_topic_position', 'events_b_topic_xid', 'events_a_pkey', 'events_b_pkey') ORDER BY 1"
} >"$out/sizes.txt"

# A: a cursor half-way through topic t1; read the next 1,000, and as many as B's batch holds.
cursor=$(psql -Atc "SELECT position FROM ordering.events_a WHERE topic = 't1' ORDER BY position OFFSET (SELECT count(*) / 2 FROM ordering.events_a WHERE topic = 't1') LIMIT 1")
# B: the batch of topic t1 between the middle tick and the next one.
mid=$(psql -Atc "SELECT tick_id FROM ordering.ticks ORDER BY tick_id OFFSET (SELECT count(*) / 2 FROM ordering.ticks) LIMIT 1")
bsql=$(psql -Atc "SELECT ordering.batch_sql('ordering.events_b', 't1', $mid, $mid + 1)")
brows=$(psql -Atc "SELECT count(*) FROM ($bsql) b")
echo "cursor=$cursor mid_tick=$mid batch_rows=$brows" >"$out/reads-params.txt"
echo "$bsql" >"$out/batch-statement.sql"

explain() { # name, statement: five runs, the plans kept
  for i in 1 2 3 4 5; do
    psql -Atc "EXPLAIN (ANALYZE, BUFFERS) $2" >"$out/explain-$1-$i.txt"
  done
}
explain a-1000 "SELECT seq, topic, id, source, type, data, position FROM ordering.events_a WHERE topic = 't1' AND position > $cursor ORDER BY position LIMIT 1000"
explain a-batch "SELECT seq, topic, id, source, type, data, position FROM ordering.events_a WHERE topic = 't1' AND position > $cursor ORDER BY position LIMIT $brows"
explain b-batch "$bsql"
# B over ten ticks (a reader that fell behind reads a wider batch).
bsql10=$(psql -Atc "SELECT ordering.batch_sql('ordering.events_b', 't1', $mid, $mid + 10)")
explain b-batch10 "$bsql10"
echo "batch10_rows=$(psql -Atc "SELECT count(*) FROM ($bsql10) b")" >>"$out/reads-params.txt"
explain a-batch10 "SELECT seq, topic, id, source, type, data, position FROM ordering.events_a WHERE topic = 't1' AND position > $cursor ORDER BY position LIMIT $(psql -Atc "SELECT count(*) FROM ($bsql10) b")"

for f in a-1000 a-batch b-batch a-batch10 b-batch10; do
  times=$(grep -h "Execution Time" "$out"/explain-$f-*.txt | sed 's/.*: \([0-9.]*\) ms/\1/' | sort -n | tr '\n' ' ')
  bufs=$(grep -h -m1 "Buffers" "$out/explain-$f-5.txt" | head -1 | sed 's/^ *//')
  echo "$f execution ms (5 runs, sorted): $times | top node $bufs"
done | tee "$out/reads-summary.txt"
