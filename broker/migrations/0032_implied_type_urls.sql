-- An event whose payload's type URL is the standard one for its type ("type.googleapis.com/" ||
-- type, what the SDK's typed publish and a publish without a type send) stores NULL there instead
-- of the URL again: 30 to 60 bytes of every event row. Reads put the URL back
-- (store/queries/events.ts). Rows stored before keep their URL; both read the same.
ALTER TABLE pgmesh.events ALTER COLUMN data_type_url DROP NOT NULL;
COMMENT ON COLUMN pgmesh.events.data_type_url IS
  'The payload''s Any type URL; NULL means ''type.googleapis.com/'' || type.';
