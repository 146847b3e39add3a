// Copies the non-TypeScript files the compiled code reads at run time (Lua scripts, prices.json, the dashboard's script and styles) into dist/.
import { cpSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const ASSET = /\.(lua|json|css|js)$/;
function copyAssets(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) copyAssets(path);
    else if (ASSET.test(name)) cpSync(path, join('dist', relative('src', path)));
  }
}
copyAssets('src');
