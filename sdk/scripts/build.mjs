// Builds the package as published: ESM JavaScript and .d.ts from src/ into dist/ (tsc), and the
// pgmesh/v1/options.proto that users' .proto files import into proto/ (its source is the
// repository's proto/ directory, one copy for the broker and the package).
import { cpSync, mkdirSync } from "node:fs";
import { buildDist } from "../../scripts/build-dist.mjs";

const here = (path) => new URL(path, import.meta.url);

buildDist(here(".."));
mkdirSync(here("../proto/pgmesh/v1"), { recursive: true });
cpSync(here("../../proto/pgmesh/v1/options.proto"), here("../proto/pgmesh/v1/options.proto"));
cpSync(here("../../LICENSE"), here("../LICENSE"));
