-- A topic may be bound to Protobuf message types; the broker then validates every payload against
-- them. The descriptors are stored as uploaded (a FileDescriptorSet from `buf build`).
CREATE TABLE pgmesh.topic_schemas (
  topic               text PRIMARY KEY REFERENCES pgmesh.topics (name) ON DELETE CASCADE,
  file_descriptor_set bytea NOT NULL,
  message_types       text[] NOT NULL,
  updated_at          timestamptz NOT NULL DEFAULT now()
);
