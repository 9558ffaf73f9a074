// Builds the package as published: ESM JavaScript from src/ into dist/ (tsc). It imports
// @pgmesh/sdk's built types, so build the sdk first (the root `npm run build` does).
import { cpSync } from "node:fs";
import { buildDist } from "../../scripts/build-dist.mjs";

const here = (path) => new URL(path, import.meta.url);

buildDist(here(".."));
cpSync(here("../../LICENSE"), here("../LICENSE"));
