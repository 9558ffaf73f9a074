#!/usr/bin/env bash
# Failure modes of the two mechanisms, shown on the private cluster (PG* variables select it;
# the database must have schema.sql and batch-sql.sql applied; its tables are emptied).
#  1. An idle-in-transaction session holding an xid: A's cursor reader and B's batches are not held
#     back; the rejected "xid < pg_snapshot_xmin" rule is.
#  2. A transaction that publishes to topic t1 and stays open LONG seconds while publishers run on
#     t1 and t2 (RATE publishes/s each, 10 events each): under A it delays t1 (every later publish
#     to t1 waits for its lock) and not t2; under B it delays only its own events.
# Usage: bench/ordering/demo-failures.sh OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?output directory}
long=${LONG:-10}
rate=${RATE:-20}
mkdir -p "$out"
q() { psql -qAtX -v ON_ERROR_STOP=1 "$@"; }

reset() {
  q -c "SET client_min_messages = warning" -c "TRUNCATE ordering.events_a, ordering.events_b, ordering.ticks" \
    -c "UPDATE ordering.topic_heads SET position = 0" \
    -c "CREATE TABLE IF NOT EXISTS ordering.cursors (topic text PRIMARY KEY, position bigint NOT NULL)" \
    -c "CREATE TABLE IF NOT EXISTS ordering.seen (topic text, position bigint, published_at timestamptz, seen_at timestamptz)" \
    -c "TRUNCATE ordering.cursors, ordering.seen" \
    -c "INSERT INTO ordering.cursors SELECT topic, 0 FROM ordering.topic_heads"
}
# A publish statement of mechanism M (a or b) with the topic fixed, for pgbench and for psql.
statement() { sed -e "/^--/d" -e "/^\\\\set/d" -e "s/'t' || (:t)::int/'$2'/g" -e "s/(:n)::int/$3/g" "$here/publish-$1.sql"; }
# A session kept open on a pipe: what is written to fd $session goes to its psql.
open_session() { exec {session}> >(psql -qAtX >"$out/$1.out" 2>&1); }
tick() { q -c "INSERT INTO ordering.ticks DEFAULT VALUES RETURNING tick_id"; }

echo "== 1. idle in transaction, holding an xid" | tee "$out/demo.txt"
reset
open_session idle
echo "BEGIN; SELECT 'idle session xid', pg_current_xact_id();" >&$session
sleep 1
q -c "SELECT 'session state: ' || state || ', backend_xid ' || backend_xid FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND state LIKE 'idle%'" | tee -a "$out/demo.txt"
t0=$(tick)
for i in 1 2 3; do
  statement a t1 50 | q
  statement b t1 50 | q
done
t1=$(tick)
{
  echo "published after the idle session began: 150 events to t1 under A, 150 under B"
  echo "A, cursor read (position > 0 ORDER BY position LIMIT 1000): $(q -c "SELECT count(*) FROM (SELECT 1 FROM ordering.events_a WHERE topic = 't1' AND position > 0 ORDER BY position LIMIT 1000) r") rows"
  echo "B, batch between the tick before and the tick after: $(q -c "SELECT count(*) FROM ($(q -c "SELECT ordering.batch_sql('ordering.events_b', 't1', $t0, $t1)")) b") rows"
  echo "rejected xmin rule (xid < pg_snapshot_xmin(pg_current_snapshot())): $(q -c "SELECT count(*) FROM ordering.events_b WHERE topic = 't1' AND xid < pg_snapshot_xmin(pg_current_snapshot())") rows"
} | tee -a "$out/demo.txt"
echo "COMMIT;" >&$session
exec {session}>&-
sleep 0.5

long_case() { # mechanism
  local m=$1
  reset
  # The reader runs meanwhile: A's advances each topic's cursor every 0.2 s and records when it saw
  # each position; B's is computed from the ticks afterwards (the ticker ticks every 0.2 s).
  if [ "$m" = a ]; then
    printf '%s\n' "WITH got AS (
        INSERT INTO ordering.seen SELECT e.topic, e.position, e.published_at, clock_timestamp()
        FROM ordering.events_a e JOIN ordering.cursors c ON e.topic = c.topic AND e.position > c.position
        RETURNING topic, position)
      UPDATE ordering.cursors c SET position = m.p
      FROM (SELECT topic, max(position) p FROM got GROUP BY topic) m WHERE c.topic = m.topic" '\watch 0.2' | psql -qX >/dev/null &
  else
    printf '%s\n' "INSERT INTO ordering.ticks DEFAULT VALUES" '\watch 0.2' | psql -qX >/dev/null &
  fi
  local reader=$!
  sleep 1
  open_session "long-$m"
  echo "BEGIN; SELECT 'long transaction xid', pg_current_xact_id(); $(statement "$m" t1 10);" >&$session
  local began; began=$(date +%s.%N)
  for t in t1 t2; do
    statement "$m" "$t" 10 >"$out/stmt-$m-$t.sql"
    pgbench -n -M prepared -T "$long" -R "$rate" -c 1 -l --log-prefix="$out/pub-$m-$t" -f "$out/stmt-$m-$t.sql" >"$out/pgbench-$m-$t.txt" 2>&1 &
  done
  sleep "$((long - 2))"
  echo "COMMIT;" >&$session
  exec {session}>&-
  wait %2 %3 2>/dev/null || wait
  sleep 1
  kill "$reader"
  echo "-- mechanism $m: the long transaction published 10 events to t1 and committed after $((long - 2)) s"
  for t in t1 t2; do
    local lat
    # pgbench -R logs the time from each publish's scheduled start (column 3) and the schedule lag
    # (column 7): column 3 minus column 7 is the statement's own latency.
    lat=$(cat "$out"/pub-$m-$t.* | awk '{ n++; s[n] = ($3 - $7) / 1000; d[n] = $3 / 1000 } END { asort(s); asort(d); printf "%d publishes; statement latency p50 %.1f ms, max %.1f ms; from scheduled start p50 %.1f ms, max %.1f ms", n, s[int(n/2)+1], s[n], d[int(n/2)+1], d[n] }')
    echo "  publishes to $t while it was open: $lat"
  done
  if [ "$m" = a ]; then
    q -c "SELECT '  delivery delay (seen by the cursor - published_at), topic ' || topic || ': ' || count(*) || ' events, p50 ' || round(1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY seen_at - published_at))) || ' ms, max ' || round(1000 * extract(epoch FROM max(seen_at - published_at))) || ' ms; positions seen = 1..' || max(position) || ': ' || (count(DISTINCT position) = max(position) AND min(position) = 1) FROM ordering.seen GROUP BY topic ORDER BY topic"
  else
    # Each event is delivered in the batch of the first tick whose snapshot sees it.
    local lxid; lxid=$(grep 'long transaction xid' "$out/long-b.out" | cut -d'|' -f2)
    q -c "DO \$\$ DECLARE t record; BEGIN
            FOR t IN SELECT tick_id, tick_time FROM ordering.ticks WHERE tick_id > (SELECT min(tick_id) FROM ordering.ticks) ORDER BY tick_id LOOP
              EXECUTE 'INSERT INTO ordering.seen SELECT topic, seq, e.published_at, ' || quote_literal(t.tick_time) || '::timestamptz FROM ordering.events_b e WHERE seq IN (SELECT seq FROM (' ||
                ordering.batch_sql('ordering.events_b', 't1', t.tick_id - 1, t.tick_id) || ') x UNION ALL SELECT seq FROM (' ||
                ordering.batch_sql('ordering.events_b', 't2', t.tick_id - 1, t.tick_id) || ') y)';
            END LOOP; END \$\$" \
      -c "SELECT '  delivery delay (tick that first includes it - published_at), topic ' || s.topic || CASE WHEN e.xid = '$lxid'::xid8 THEN ', the long transaction''s own events: ' ELSE ', other events: ' END || count(*) || ' events, p50 ' || round(1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY s.seen_at - s.published_at))) || ' ms, max ' || round(1000 * extract(epoch FROM max(s.seen_at - s.published_at))) || ' ms' FROM ordering.seen s JOIN ordering.events_b e ON e.seq = s.position GROUP BY s.topic, e.xid = '$lxid'::xid8 ORDER BY 1" \
      -c "SELECT '  every stored event delivered exactly once: ' || ((SELECT count(*) FROM ordering.seen) = (SELECT count(*) FROM ordering.events_b) AND (SELECT count(DISTINCT position) FROM ordering.seen) = (SELECT count(*) FROM ordering.events_b))"
  fi
}
echo "== 2. a transaction publishing to t1 stays open; publishers on t1 and t2 meanwhile" | tee -a "$out/demo.txt"
long_case a | tee -a "$out/demo.txt"
long_case b | tee -a "$out/demo.txt"
