#!/usr/bin/env bash
# `npm run generate`: every generated file that is committed, from proto/ (see scripts/check-generated.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# ts-proto into protocol/src/gen (@pgmesh/proto); protobuf-es into broker/console/src/gen (the web console's).
buf generate
# The Python package's stubs, from Debian's protoc and grpc_python_plugin (python/buf.gen.yaml).
if command -v protoc >/dev/null && command -v grpc_python_plugin >/dev/null; then
  buf generate --template python/buf.gen.yaml
else
  echo "warning: protoc or grpc_python_plugin missing (apt: protobuf-compiler protobuf-compiler-grpc): python/src/pgmesh/v1 not regenerated" >&2
fi
# The descriptors the broker checks requests against and serves by reflection.
mkdir -p broker/descriptors
buf build --as-file-descriptor-set -o broker/descriptors/pgmesh.binpb
buf build node_modules/grpc-health-check/proto --as-file-descriptor-set -o broker/descriptors/health.binpb
