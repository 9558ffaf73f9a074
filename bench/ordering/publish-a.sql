-- Mechanism A: the topic's counter row is updated (and so locked until commit) in the same
-- statement that stores the events with the positions it handed out: one round trip, one commit,
-- as today's publish statement.
\set t random(1, :ntopics)
WITH head AS (
  UPDATE ordering.topic_heads SET position = position + (:n)::int
  WHERE topic = 't' || (:t)::int RETURNING position
)
INSERT INTO ordering.events_a (topic, id, source, type, data, position)
SELECT 't' || (:t)::int, gen_random_uuid()::text, 'bench', 'bench.event', decode(repeat('ab', 200), 'hex'),
       head.position - (:n)::int + g
FROM head, generate_series(1, (:n)::int) g;
