#!/usr/bin/env bash
# Fails when the committed generated code or descriptors differ from what `npm run generate`
# makes now, or when `buf lint` finds anything.
set -euo pipefail
cd "$(dirname "$0")/.."
buf lint
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
buf generate -o "$out"
buf build --as-file-descriptor-set -o "$out/pgmesh.binpb"
buf build node_modules/grpc-health-check/proto --as-file-descriptor-set -o "$out/health.binpb"
stale=0
if ! diff -r protocol/src/gen "$out/protocol/src/gen" >/dev/null; then
  echo "protocol/src/gen is stale: run 'npm run generate' and commit the result" >&2
  diff -r protocol/src/gen "$out/protocol/src/gen" | head -20 >&2 || true
  stale=1
fi
if ! diff -r broker/console/src/gen "$out/broker/console/src/gen" >/dev/null; then
  echo "broker/console/src/gen (protobuf-es, the console's) is stale: run 'npm run generate' and commit the result" >&2
  diff -r broker/console/src/gen "$out/broker/console/src/gen" | head -20 >&2 || true
  stale=1
fi
for f in pgmesh.binpb health.binpb; do
  if ! cmp -s "broker/descriptors/$f" "$out/$f"; then
    echo "broker/descriptors/$f is stale: run 'npm run generate' and commit the result" >&2
    stale=1
  fi
done
# The orders example's typed code (ts-proto + protoc-gen-pgmesh).
buf generate --template examples/orders/buf.gen.yaml --config examples/orders/buf.workspace.yaml \
  --path examples/orders/proto/shop -o "$out/orders" .
if ! diff -r examples/orders/gen "$out/orders/examples/orders/gen" >/dev/null; then
  echo "examples/orders/gen is stale: see examples/orders/buf.gen.yaml for the command" >&2
  stale=1
fi
# The Python package's stubs come from Debian's protoc and grpc_python_plugin; CI installs them.
if command -v protoc >/dev/null && command -v grpc_python_plugin >/dev/null; then
  buf generate --template python/buf.gen.yaml -o "$out/py"
  if ! diff -r -x __init__.py -x '*.py[co]' -x __pycache__ python/src/pgmesh/v1 "$out/py/python/src/pgmesh/v1" >/dev/null; then
    echo "python/src/pgmesh/v1 is stale: run 'npm run generate' and commit the result" >&2
    diff -r -x __init__.py -x __pycache__ python/src/pgmesh/v1 "$out/py/python/src/pgmesh/v1" | head -20 >&2 || true
    stale=1
  fi
elif [ "${CI:-}" = "true" ]; then
  echo "protoc and grpc_python_plugin are needed to check the Python stubs (apt: protobuf-compiler protobuf-compiler-grpc)" >&2
  stale=1
else
  echo "warning: protoc or grpc_python_plugin missing: the Python stubs were not checked" >&2
fi
exit "$stale"
