-- A publish is one statement (store/queries/publish.ts). The broker decides which subscriptions
-- get an event (their filters run in the broker) from a cached list of the topics' subscriptions;
-- the statement locks the topics and subscriptions and checks that list against them, and this
-- function aborts it when they differ (a subscription created or deleted since), so nothing is
-- stored on a stale list. The broker then reloads the list and publishes again.
CREATE FUNCTION pgmesh.assert_publish_catalog(matches boolean) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF NOT matches THEN
    RAISE EXCEPTION 'the topics or subscriptions of this publish changed since the broker read them'
      USING ERRCODE = 'PM001';
  END IF;
  RETURN true;
END
$$;
