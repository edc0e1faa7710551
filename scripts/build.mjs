// Builds dist/cli.js, the `gabe` bin: one ES module bundle (plus lazily loaded chunks) made with
// esbuild. A bundle because loading hundreds of small modules (typebox alone has ~700 files) cost
// `gabe download` half a second of start-up on every run; type checking is `npm run typecheck`.
import { chmodSync, rmSync } from 'node:fs';
import { build } from 'esbuild';

// Kept as packages: native code, and packages that find their own files next to themselves at run
// time (Swagger UI's assets, the ffmpeg binaries). pino is bundled: Gabe uses no pino transports,
// the only part that loads worker files by path.
const external = [
  'better-sqlite3',
  '@fastify/swagger-ui',
  '@fastify/static',
  '@ffmpeg-installer/ffmpeg',
  '@ffprobe-installer/ffprobe',
];

rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints: ['src/cli.ts'],
  outdir: 'dist',
  // Chunks beside the entry: src/version.ts finds package.json one folder up from wherever it runs.
  chunkNames: '[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  external,
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
  // Bundled CommonJS packages call require() for Node's built-ins; an ES module has none of its own.
  banner: {
    js: "import { createRequire as __gabeRequire } from 'node:module'; const require = __gabeRequire(import.meta.url);",
  },
});
chmodSync('dist/cli.js', 0o755);
