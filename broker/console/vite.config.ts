// The web console's build: a single-page app in plain files (no CDN), served by the broker from
// console/dist. `npm run build -w @pgmesh/broker` runs it.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // One script and one stylesheet: the console is small, and the first paint waits for both.
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
  logLevel: "warn",
});
