// The compiled CLI in dist/ and whether it may run. bin/build.js writes dist/build.json (this
// file alone knows its format); bin/satroute.js runs dist/ only when every file the build read
// is still exactly as it was then, otherwise the TypeScript sources through tsx. So an edited
// source, a `git pull` or a reinstalled dependency can never run old compiled code.
//
// "Exactly as it was" is size and mtime per input, not "older than the build": a checkout or
// `tar x` can give a changed file an older mtime, and a `chown -R` changes every ctime without
// changing any code. The build refuses to record a file modified while it ran (see build.js).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export const MANIFEST_FILE = 'build.json';
const FORMAT = 1;

/**
 * @typedef {object} Manifest
 * @property {number} format
 * @property {string} entry        the CLI module, relative to the dist directory
 * @property {string[]} outputs    every file of the build, relative to the dist directory
 * @property {[string, number, number][]} inputs  [path relative to the project root, size, mtimeMs]
 * @property {string} builtAt      ISO time, for people
 */

/** Write the manifest last: a dist directory without one is never run. */
export function writeManifest(distDir, manifest) {
  const tmp = path.join(distDir, `${MANIFEST_FILE}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify({ format: FORMAT, ...manifest }) + '\n');
  fs.renameSync(tmp, path.join(distDir, MANIFEST_FILE));
}

/** [size, mtimeMs] of a file now, or null when it is gone. */
export function fingerprint(file) {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  return st ? [st.size, st.mtimeMs] : null;
}

/** Why dist/ must not run (a short reason), or null when it is current. */
export function staleReason(root, distDir) {
  return check(root, distDir).reason;
}

/** The file URL of the compiled CLI module when it is current, else null. */
export function compiledEntry(root, distDir = path.join(root, 'dist')) {
  const { reason, manifest } = check(root, distDir);
  return reason === null ? pathToFileURL(path.join(distDir, manifest.entry)).href : null;
}

function check(root, distDir) {
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(distDir, MANIFEST_FILE), 'utf8'));
  } catch {
    return { reason: 'no build' };
  }
  if (manifest.format !== FORMAT || !Array.isArray(manifest.inputs) || !Array.isArray(manifest.outputs) || typeof manifest.entry !== 'string') return { reason: 'unknown build format' };
  for (const [file, size, mtimeMs] of manifest.inputs) {
    const now = fingerprint(path.resolve(root, file));
    if (!now) return { reason: `${file} is gone` };
    if (now[0] !== size || now[1] !== mtimeMs) return { reason: `${file} changed since the build` };
  }
  for (const file of manifest.outputs) if (!fs.existsSync(path.join(distDir, file))) return { reason: `${path.basename(distDir)}/${file} is missing` };
  return { reason: null, manifest };
}
