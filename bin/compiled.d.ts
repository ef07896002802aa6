// Types of bin/compiled.js (plain JavaScript: bin/satroute.js loads it before any TypeScript).
export declare const MANIFEST_FILE: string;
export interface Manifest {
  entry: string;
  outputs: string[];
  inputs: [file: string, size: number, mtimeMs: number][];
  builtAt: string;
}
export declare function writeManifest(distDir: string, manifest: Manifest): void;
export declare function fingerprint(file: string): [size: number, mtimeMs: number] | null;
/** Why dist/ must not run (a short reason), or null when it is current. */
export declare function staleReason(root: string, distDir: string): string | null;
/** The file URL of the compiled CLI module when it is current, else null. */
export declare function compiledEntry(root: string, distDir?: string): string | null;
