#!/usr/bin/env node
/**
 * `cellular` — grow an organism, read its census, stop it, back it up and restore it. Every flag is documented in
 * docs/commands.md; `cellular help` prints the same summary. This file only dispatches:
 * the usage text and flags are in commands/usage.ts, each command in commands/<name>.ts.
 */
import { readFileSync } from 'node:fs';
import { CellularError, isCellularError } from '../wire/errors.ts';
import { backup, restore } from './commands/backup.ts';
import { census } from './commands/census.ts';
import { creds } from './commands/creds.ts';
import { grow } from './commands/grow.ts';
import { nginx } from './commands/nginx.ts';
import { stop } from './commands/stop.ts';
import { HELP, parse, say } from './commands/usage.ts';

export { HELP };
export { gatherCensus } from './commands/target.ts';

export async function main(argv: string[]): Promise<number> {
  const { command, flags } = parse(argv);
  if (flags.version) {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  if (flags.help || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  switch (command) {
    case 'grow':
      return grow(flags);
    case 'census':
      return census(flags);
    case 'stop':
      return stop(flags);
    case 'backup':
      return backup(flags);
    case 'restore':
      return restore(flags);
    case 'nginx':
      return nginx(flags);
    case 'creds':
      return creds(flags);
    default:
      throw new CellularError('CLI_ERR_USAGE', `unknown command ${JSON.stringify(command)}\n\n${HELP}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    say(isCellularError(e) ? `error ${e.code}: ${e.message}` : `error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
