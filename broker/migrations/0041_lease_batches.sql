-- Delivery core v2, the happy path per batch (docs/design/cursor-delivery.md, "Leased batches"):
-- the events a lease takes from a subscription's cursor are held by one row, not a pg-boss job
-- each. A batch is a JetStream-style pending set: the events it leased (`seqs`) and a bit per event
-- still unsettled (`pending`). An ack clears its bit and the row goes when none is left, so a batch
-- of 500 acked in a few ack groups writes a handful of row versions instead of 500 job inserts and
-- 500 deletes. Anything that needs a schedule of its own leaves the batch for a pg-boss job: a
-- nack's retry, a lease extended past the batch's deadline, a lapse (the sweeper), a dead letter.
CREATE TABLE pgmesh.lease_batches (
  id          uuid PRIMARY KEY,
  queue       text NOT NULL REFERENCES pgmesh.subscriptions (queue) ON DELETE CASCADE,
  -- The leased events in slot order; slot i is seqs[i + 1].
  seqs        bigint[] NOT NULL,
  -- Bit i set: slot i is leased and not settled yet.
  pending     bit varying NOT NULL,
  leased_at   timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL
) WITH (fillfactor = 70);
-- Acks rewrite `pending` only, which no index covers: their updates stay HOT with free room.
CREATE INDEX lease_batches_queue ON pgmesh.lease_batches (queue);
CREATE INDEX lease_batches_expiry ON pgmesh.lease_batches (expires_at);

-- Takes slots out of batches: for each batch, the slots of its mask that are still pending are
-- cleared and returned (`taken`); the others were settled already or lapsed (the caller answers
-- them STALE). A batch with nothing left pending is deleted. Row-locked per batch, in the order
-- given (callers sort by id, so two takers never deadlock). Masks are as long as their batch.
CREATE FUNCTION pgmesh.take_lease_slots(p_batches uuid[], p_masks bit varying[])
RETURNS TABLE (batch uuid, taken bit varying)
LANGUAGE plpgsql AS $$
DECLARE
  bits bit varying;
  rest bit varying;
BEGIN
  FOR i IN 1 .. coalesce(array_length(p_batches, 1), 0) LOOP
    SELECT b.pending INTO bits FROM pgmesh.lease_batches b WHERE b.id = p_batches[i] FOR UPDATE;
    CONTINUE WHEN NOT FOUND OR length(bits) <> length(p_masks[i]);
    batch := p_batches[i];
    taken := bits & p_masks[i];
    rest := bits & ~p_masks[i];
    IF bit_count(rest) = 0 THEN
      DELETE FROM pgmesh.lease_batches b WHERE b.id = batch;
    ELSIF bit_count(taken) > 0 THEN
      UPDATE pgmesh.lease_batches b SET pending = rest WHERE b.id = batch;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;
