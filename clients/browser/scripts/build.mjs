// Builds dist/pos-logger.js (ES module, one file, no dependencies) with esbuild.
//   --size  also prints its size minified and minified + gzipped
//   --test  also copies the test pages' HTML next to their compiled scripts
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const common = { entryPoints: [`${root}src/index.ts`], bundle: true, format: 'esm', target: 'es2022', platform: 'browser', legalComments: 'none' };

await build({ ...common, outfile: `${root}dist/pos-logger.js`, sourcemap: true });

if (process.argv.includes('--size')) {
  const r = await build({ ...common, write: false, minify: true });
  const code = r.outputFiles[0].contents;
  const gz = gzipSync(code, { level: 9 }).length;
  console.log(`pos-logger bundle: ${code.length} bytes minified, ${gz} bytes minified + gzipped (esbuild, target es2022)`);
}

if (process.argv.includes('--test')) {
  mkdirSync(`${root}dist/test/pages`, { recursive: true });
  for (const f of readdirSync(`${root}test/pages`)) if (f.endsWith('.html')) copyFileSync(`${root}test/pages/${f}`, `${root}dist/test/pages/${f}`);
}
