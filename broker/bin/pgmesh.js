#!/usr/bin/env node
// The `pgmesh` command. `#cli` is the built JavaScript; inside the pgmesh repository,
// `node --conditions=pgmesh-source --import tsx` runs the TypeScript sources instead.
await import("#cli");
