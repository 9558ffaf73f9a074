-- Mechanism B: each event stores pg_current_xact_id() (the column's default).
\set t random(1, :ntopics)
INSERT INTO ordering.events_b (topic, id, source, type, data)
SELECT 't' || (:t)::int, gen_random_uuid()::text, 'bench', 'bench.event', decode(repeat('ab', 200), 'hex')
FROM generate_series(1, (:n)::int);
