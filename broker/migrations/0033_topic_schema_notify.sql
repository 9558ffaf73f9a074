-- Every change to a topic's schema (set, replaced, dropped, or deleted with its topic) notifies
-- pgmesh_topic_schema_changed with the topic's name, after its commit. Brokers cache compiled
-- schemas until told, instead of reloading each topic's schema every second on the publish path
-- (100 topics: 100 queries a second, and one publish in ten waiting for one). A trigger, rather
-- than the statements that change schemas, so that the cascade of a topic's delete notifies too.
CREATE FUNCTION pgmesh.notify_topic_schema_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('pgmesh_topic_schema_changed', OLD.topic);
  ELSE
    PERFORM pg_notify('pgmesh_topic_schema_changed', NEW.topic);
  END IF;
  RETURN NULL;
END;
$$;

CREATE TRIGGER topic_schema_changed
  AFTER INSERT OR UPDATE OR DELETE ON pgmesh.topic_schemas
  FOR EACH ROW EXECUTE FUNCTION pgmesh.notify_topic_schema_changed();
