#!/usr/bin/env node
/** The `mtpd` command line. Each subcommand lives in src/commands/. */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { commands } from './commands/index.js';

export async function main(argv: string[]): Promise<void> {
  let cli = yargs(argv)
    .scriptName('mtpd')
    .strict()
    .demandCommand(1, 'name a command (mtpd --help lists them)')
    .recommendCommands()
    .help()
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      // Errors with a code come from the work itself (bad file, native failure): exit 1.
      // Everything else is a usage error: exit 2 with a pointer to --help.
      if (err && (err as { code?: unknown }).code !== undefined) throw err;
      process.stderr.write(`mtpd: ${msg ?? err?.message}\nRun "mtpd --help" for usage.\n`);
      process.exit(2);
    });
  for (const c of commands) cli = cli.command(c);
  await cli.parseAsync();
}

main(hideBin(process.argv)).catch((err: unknown) => {
  const e = err as { message?: string; code?: string };
  process.stderr.write(`mtpd: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}\n`);
  if (process.env.MTPD_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exitCode = 1;
});
