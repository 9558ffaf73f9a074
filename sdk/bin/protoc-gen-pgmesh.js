#!/usr/bin/env node
// The `protoc-gen-pgmesh` buf/protoc plugin. The sources are TypeScript, run through tsx's loader.
import { register } from "tsx/esm/api";

register();
const { runNodeJs } = await import("@bufbuild/protoplugin");
const { protocGenPgmesh } = await import("../src/codegen/protoc-gen-pgmesh.ts");
runNodeJs(protocGenPgmesh);
