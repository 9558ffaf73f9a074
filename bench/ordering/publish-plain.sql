-- One publish of :n events of 200 bytes to a random one of :ntopics topics, neither mechanism.
\set t random(1, :ntopics)
INSERT INTO ordering.events_plain (topic, id, source, type, data)
SELECT 't' || (:t)::int, gen_random_uuid()::text, 'bench', 'bench.event', decode(repeat('ab', 200), 'hex')
FROM generate_series(1, (:n)::int);
