/**
 * The command line: the usage text `cellular help` prints, the flags every command shares
 * (docs/commands.md documents each), and their parsing. Progress goes to stderr (`say`),
 * so stdout stays the command's output.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CellularError } from '../../wire/errors.ts';

export const HELP = `cellular — a messenger server that is a swarm of processes

Usage:
  cellular grow   [--state-dir DIR] [--genome FILE] [--set PATH=VALUE]... [--nats URL[,URL...]]
                  [--id ID] [--no-install] [--plain] [--host NAME]
                  [--cluster NAME --routes HOST:PORT[,HOST:PORT...] [--cluster-port PORT]]
  cellular census [--state-dir DIR] [--json] [--nats URL[,URL...]] [--id ID]
  cellular stop   [--state-dir DIR] [--nats URL[,URL...]] [--id ID]
  cellular backup --out DIR [--state-dir DIR] [--nats URL[,URL...]] [--id ID]
  cellular restore --from DIR [--force] [--state-dir DIR] [--nats URL[,URL...]] [--id ID]
  cellular nginx  [--state-dir DIR | --nats URL[,URL...] --id ID] [--listen HOST:PORT] [--out FILE]
                  [--watch] [--run | --nginx-pid FILE] [--server-name NAME] [--public-url URL]
                  [--tls-cert FILE --tls-key FILE]
  cellular creds  --tissue T [--out FILE] [--ttl SECONDS] [--state-dir DIR]
  cellular help | --help | --version

Options:
  --state-dir DIR   organism state (root key, broker store, logs); default .organism
  --genome FILE     JSON genome merged over the defaults
  --set PATH=VALUE  override one genome field, e.g. --set limits.pulseIntervalMs=250 (repeatable)
  --nats URLS       join these NATS servers instead of starting a private nats-server
  --id ID           organism id (namespace org.<id>.); default: kept in the state dir
  --no-install      never install nats-server with apt-get, even as root on Debian
  --host NAME       this host's name in the census (default: the machine's hostname)
  --cluster NAME    start this host's nats-server as a member of NATS cluster NAME (with --routes);
                    every host shares root.key, root.pub, broker.token and the --id (docs/deployment.md)
  --routes LIST     the cluster members' route addresses host:port (this host's may be listed)
  --cluster-port P  the route port this member listens on (on broker.host); default 6222
  --plain           log census changes and homeostasis decisions as lines instead of redrawing a table
  --json            census as a JSON array (like pm2 jlist)
  --out DIR         backup: snapshot every stream and bucket into DIR (new or empty), with manifest.json
  --out FILE        nginx: write the config here (default: stdout; with --watch/--run <state-dir>/nginx/nginx.conf)
  --listen HOST:PORT  nginx: where the front door listens; default 127.0.0.1:8088 (loopback only)
  --watch           nginx: keep the config current as receivers come and go (debounced 500 ms)
  --run             nginx: also run Debian's nginx (prefix <state-dir>/nginx), reload it, stop it on exit
  --nginx-pid FILE  nginx: reload (SIGHUP) the nginx master whose pid is in FILE after each write
  --server-name NAME  nginx: server_name (comma-separated); other Host names get no answer
  --public-url URL  nginx: the URL browsers use, answered on /receivers; default from the listen/name
  --tls-cert FILE   nginx: TLS certificate chain (with --tls-key): listen ... ssl
  --tls-key FILE    nginx: TLS private key
  --from DIR        restore: the backup directory; the organism id defaults to the backup's with --nats
  --tissue T        creds: whose permissions (a tissue of the genome, grow or observer; docs/security.md)
  --ttl SECONDS     creds: how long the credential lives; default 3600, at most 604800
  --out FILE        creds: write the .creds file here (mode 0600) instead of printing it
  --force           restore: even while the organism is alive, deleting the streams the backup holds

Environment:
  NATS_SERVER_BIN     path of the nats-server binary to use
  NGINX_BIN           path of the nginx binary for cellular nginx (default /usr/sbin/nginx)
  CELLULAR_CELL_FLAGS V8 flags for cell processes (default --max-semi-space-size=1)

Every flag: docs/commands.md; the genome: docs/genome.md; the rest: docs/README.md.
`;

export const OPTIONS = {
  'state-dir': { type: 'string', default: '.organism' },
  genome: { type: 'string' },
  set: { type: 'string', multiple: true },
  nats: { type: 'string' },
  id: { type: 'string' },
  'no-install': { type: 'boolean', default: false },
  host: { type: 'string' },
  cluster: { type: 'string' },
  routes: { type: 'string' },
  'cluster-port': { type: 'string' },
  plain: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  out: { type: 'string' },
  from: { type: 'string' },
  listen: { type: 'string' },
  watch: { type: 'boolean', default: false },
  run: { type: 'boolean', default: false },
  'nginx-pid': { type: 'string' },
  'server-name': { type: 'string' },
  'public-url': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  force: { type: 'boolean', default: false },
  tissue: { type: 'string' },
  ttl: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean', default: false },
} as const satisfies ParseArgsConfig['options'];

export type Flags = { [K in keyof typeof OPTIONS]: (typeof OPTIONS)[K] extends { multiple: true } ? string[] | undefined : (typeof OPTIONS)[K] extends { type: 'boolean' } ? boolean : string | undefined };

export function parse(argv: string[]): { command: string; flags: Flags } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (cause) {
    throw new CellularError('CLI_ERR_USAGE', `${(cause as Error).message}\n\n${HELP}`, { cause });
  }
  const [command = 'help', ...rest] = parsed.positionals;
  if (rest.length > 0) throw new CellularError('CLI_ERR_USAGE', `unexpected argument ${JSON.stringify(rest[0])}\n\n${HELP}`);
  return { command, flags: parsed.values as unknown as Flags };
}

/** The --nats servers, if given. */
export function servers(flags: Flags): string[] | undefined {
  if (flags.nats === undefined) return undefined;
  const list = flags.nats.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new CellularError('CLI_ERR_USAGE', '--nats expects URL[,URL...], received nothing');
  return list;
}

/** A progress line, on stderr. */
export const say = (line: string) => process.stderr.write(`${line}\n`);

