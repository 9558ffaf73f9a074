// Builds the package as published: ESM JavaScript and .d.ts of the generated wire code from src/
// into dist/ (tsc), and the API's .proto files into proto/ (their source is the repository's proto/
// directory, one copy for the broker, the SDK and this package).
import { cpSync, rmSync } from "node:fs";
import { buildDist } from "../../scripts/build-dist.mjs";

const here = (path) => new URL(path, import.meta.url);

buildDist(here(".."));
rmSync(here("../proto"), { recursive: true, force: true });
cpSync(here("../../proto/pgmesh"), here("../proto/pgmesh"), { recursive: true });
cpSync(here("../../LICENSE"), here("../LICENSE"));
