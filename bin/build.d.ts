// Types of bin/build.js (plain JavaScript: it runs at install, before anything is compiled).
export declare class BuildError extends Error {}
export interface BuildResult {
  outDir: string;
  /** The compiled CLI module. */
  entry: string;
  /** Every file written, relative to outDir. */
  outputs: string[];
  /** How many source and dependency files the build read. */
  inputs: number;
  attempts: number;
  /** Source files (relative to the root) that every command loads before its action runs. */
  startup: string[];
}
/** Compile the CLI and the daemon into outDir (default <root>/dist), replacing it whole. */
export declare function build(options?: { root?: string; outDir?: string; clock?: () => number }): Promise<BuildResult>;
