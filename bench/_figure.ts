/** One benchmark figure, as `npm run bench -- --json` prints it. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  baseline?: number | null;
  ratio?: number | null;
}
