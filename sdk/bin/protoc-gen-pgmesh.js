#!/usr/bin/env node
// The `protoc-gen-pgmesh` buf/protoc plugin. `#codegen` is the built JavaScript; inside the pgmesh
// repository, `node --conditions=pgmesh-source --import tsx` runs the TypeScript sources instead.
import { runNodeJs } from "@bufbuild/protoplugin";
import { protocGenPgmesh } from "#codegen";

runNodeJs(protocGenPgmesh);
