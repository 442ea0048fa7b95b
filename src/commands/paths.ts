/** yargs `coerce` for a path option: an empty value (`--weights ""`) is an error naming the option, never "no value" or the current folder. */
export function nonEmptyPath(flag: string): (value: string) => string {
  return (value: string) => {
    if (typeof value === 'string' && value.trim() === '') throw new Error(`--${flag}: needs a path, got an empty string`);
    return value;
  };
}
