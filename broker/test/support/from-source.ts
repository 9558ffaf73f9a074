// Node flags that run the repository's TypeScript as it is: tsx for .ts files, and the
// `pgmesh-source` condition so that @pgmesh/sdk and the bins' `#cli` / `#codegen` imports resolve to
// src/ rather than the built dist/ the published packages use (no build needed in the repository).
export const FROM_SOURCE = ["--conditions=pgmesh-source", "--import", "tsx"];
