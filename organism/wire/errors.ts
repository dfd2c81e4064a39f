/**
 * The one error catalogue. Every error the organism raises carries a stable code from
 * here; docs/errors.md lists them all and test/organism/wire/errors.test.ts keeps that table
 * complete. Errors that cross NATS travel as plain data (`toWire`) and are rebuilt
 * (`fromWire`) on arrival, so a caller sees the same code the callee raised.
 */

export const ErrorCodes = {
  GENOME_ERR_INVALID: 'a genome field is missing, of the wrong type or out of range',
  GENOME_ERR_FILE: 'the genome file cannot be read or is not JSON',
  GENOME_ERR_UNKNOWN_FIELD: 'the genome names a field that does not exist',
  CLI_ERR_USAGE: 'the command line names an unknown command or flag, or a flag lacks its value',
  BROKER_ERR_NOT_FOUND: 'no nats-server binary was found and none could be installed',
  BROKER_ERR_INSTALL: 'installing the nats-server package failed',
  BROKER_ERR_START: 'nats-server exited or did not answer in time',
  BROKER_ERR_NO_PORT: 'no free port could be found for nats-server',
  BROKER_ERR_CONNECT: 'the NATS server or cluster could not be reached',
  BROKER_ERR_CLUSTER: 'the cluster flags are invalid, or the JetStream cluster elected no leader in time (too few servers up)',
  BROKER_ERR_TLS: 'the organism CA or this host\'s certificate could not be made or read (openssl missing, ca.key too readable, ca.pem not copied)',
  HOST_ERR_NAME: 'a host name (grow --host, CELLULAR_HOST) is not 1-63 letters, digits, dashes or underscores',
  PLACEMENT_ERR_REFUSED: 'a host asked to make a cell refused: it has no room (limits.cellsPerHost, limits.rssPerHostMb) or no cell there has budget',
  HORMONE_ERR_KIND: 'a hormone kind is not in the vocabulary',
  HORMONE_ERR_BODY: 'a hormone body does not fit its kind, or would not survive decoding unchanged',
  HORMONE_ERR_TOO_LARGE: 'an encoded hormone exceeds limits.hormoneMaxBytes',
  TRUST_ERR_ROOT_KEY: 'the root key file is unreadable, malformed or too widely readable',
  TRUST_ERR_CERTIFICATE: 'a lineage certificate is malformed or its signature does not verify',
  MINT_ERR_REFUSED: 'the mint refused a broker credential: the certificate does not verify, the cell is revoked, or the stem is not a pending recruit',
  CELL_ERR_BIRTH_PACKET: 'a cell process was started without a valid birth packet on stdin',
  CELL_ERR_TISSUE_MODULE: 'a tissue module cannot be loaded or does not export a tissue',
  CELL_ERR_POPULATION_MAX: 'spawning would exceed limits.cellsPerHost or the tissue max',
  CELL_ERR_SPAWN: 'a cell process could not be started or never pulsed',
  BENCH_ERR_PEER: 'a benchmark\'s peer process (the bare Node process it compares against) did not start or connect in time',
  CELL_ERR_CLOSED: 'the cell or component is closed',
  CELL_ERR_ABORTED: 'the operation was aborted through its AbortSignal',
  CELL_ERR_REMOTE: 'a request to another cell failed there; the cause carries its code',
  TISSUE_ERR_BAD_REQUEST: 'a request to a tissue endpoint is not valid msgpack or not what the endpoint expects',
  TISSUE_ERR_UNAVAILABLE: 'no cell of the tissue answered (none alive, or all draining)',
  STORE_ERR_SETUP: 'the organism streams and KV buckets could not be created (JetStream off, or no permission)',
  STORE_ERR_RECORD: 'a homeostasis record in the KV bucket is malformed (it is ignored and rewritten)',
  STORE_ERR_UNAVAILABLE: 'a KV bucket could not be read now (no JetStream leader, the broker unreachable): retry; nothing was decided',
  HOMEOSTASIS_ERR_REFUSED: 'a division was refused: the tissue max, a per-host ATP limit, mitosis per minute or the lineage budget',
  HOMEOSTASIS_ERR_DIFFERENTIATE: 'a stem cell could not differentiate (not a stem cell any more, draining, or the tissue DNA failed to load)',
  HOMEOSTASIS_ERR_UNANSWERED: 'a recruited stem cell did not answer in time: it may still differentiate, so it stays pending',
  PROTO_ERR_MALFORMED: 'a client frame is not msgpack, not an object, or of another protocol version',
  PROTO_ERR_TOO_LARGE: 'a client frame or message body exceeds messenger.maxFrameBytes or messenger.maxBodyBytes',
  PROTO_ERR_UNKNOWN_TYPE: 'a client frame names a type the protocol does not have',
  PROTO_ERR_BAD_FIELD: 'a client frame lacks a field, or a field has the wrong type or is out of range',
  PROTO_ERR_RATE: 'a connection sent more than messenger.framesPerSecond frames',
  AUTH_ERR_REQUIRED: 'the operation needs a session: log in or resume first',
  AUTH_ERR_CREDENTIALS: 'the username or password is wrong',
  AUTH_ERR_SESSION: 'the session token is unknown or expired',
  AUTH_ERR_RATE_LIMITED: 'too many login attempts for this user or from this address; wait for the window to pass',
  AUTH_ERR_LEGACY: 'the account was made before end-to-end login: its owner logs in with the password once more, which upgrades it',
  AUTH_ERR_PROOF: 'replacing keys or the key backup, or deleting the account, needs the owner: a grant from a fresh login or a signature by the current identity key',
  ACCOUNT_ERR_EXISTS: 'the username is taken',
  ACCOUNT_ERR_NOT_FOUND: 'no such user',
  ACCOUNT_ERR_USERNAME: 'a username must be 3-32 lowercase letters, digits, dashes or underscores, starting with a letter or digit',
  ACCOUNT_ERR_PASSWORD: 'a password must be 8-1024 bytes',
  ACCOUNT_ERR_KEYS: 'published public keys are malformed (X25519 and Ed25519 keys are 32 bytes)',
  MESSAGE_ERR_FORBIDDEN: 'the message or inbox belongs to another user',
  MESSAGE_ERR_NOT_FOUND: 'no such message',
  MESSAGE_ERR_STORE: 'JetStream did not store the message (no ack was given: send it again)',
  MESSAGE_ERR_QUOTA: 'the recipient\'s inbox holds messenger.inboxMaxMessages messages: nothing more is stored for it until old ones age out',
  STORE_ERR_FULL: 'the message store holds messenger.storeMaxBytes: nothing more is stored until old messages age out',
  MESSAGE_ERR_REPLICA: 'the stream leader holds a message up to this sequence that was not delivered under its sequence: the read cursor stays, delivery starts again from it',
  RECEIVER_ERR_NO_PORT: 'no free port in messenger.portMin-portMax for a receiver',
  DASHBOARD_ERR_TOKEN: 'a control needs the dashboard token that grow prints; without it the dashboard is read-only',
  DASHBOARD_ERR_FRAME: 'a frame from a dashboard page is not JSON, too large, of an unknown type, or lacks a field',
  DASHBOARD_ERR_RATE: 'a dashboard page sent more controls than dashboard.controlsPerMinute',
  DASHBOARD_ERR_CONTROL: 'a control names no such cell, tissue, fault or scenario, or cannot be done now',
  OPERATOR_ERR_UNAVAILABLE: 'no operator (the grow process, which holds the root key) answered a control',
  STATE_ERR_NO_ORGANISM: 'no organism record was found in the state dir (is grow running?)',
  STATE_ERR_LOCKED: 'another grow already runs with this state dir',
  NGINX_ERR_INPUT: 'an input of the nginx front door config (receiver URL, listen address, server name, TLS path, public URL) is malformed or could inject nginx syntax',
  NGINX_ERR_NOT_FOUND: 'the nginx binary was not found (Debian: apt-get install nginx, or set NGINX_BIN)',
  NGINX_ERR_START: 'nginx refused the config (nginx -t) or exited or did not come up in time',
  NGINX_ERR_RELOAD: 'nginx could not be reloaded (no pid, or the pid is not an nginx master)',
  BACKUP_ERR_MANIFEST: "a backup's manifest.json is missing, not JSON, of another format version or organism, or a field is missing, of the wrong type or out of range",
  BACKUP_ERR_CHECKSUM: 'a snapshot file of a backup is missing, or its size or sha256 differs from the manifest',
  BACKUP_ERR_EXISTS: 'a stream or bucket the backup would restore already exists on the server (restore --force deletes it first)',
  BACKUP_ERR_SNAPSHOT: 'the server refused or stalled a stream snapshot, or the organism has no streams there',
  BACKUP_ERR_RESTORE: 'the server refused, stalled or failed a stream restore, or the stream came back behind the backup',
  BACKUP_ERR_DIR: 'the backup directory cannot be created or written, or is not empty',
  BACKUP_ERR_ALIVE: 'restore was refused because the organism is alive (its grow runs or a cell answered); stop it first, or pass --force',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export interface WireError {
  name: string;
  code: string;
  message: string;
  cell?: string;
}

export class CellularError extends Error {
  readonly code: ErrorCode;
  /** The cell that raised it, when it came across the bus. */
  readonly cell: string | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; cell?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CellularError';
    this.code = code;
    this.cell = options.cell;
  }

  toWire(): WireError {
    const wire: WireError = { name: this.name, code: this.code, message: this.message };
    if (this.cell !== undefined) wire.cell = this.cell;
    return wire;
  }

  static fromWire(value: unknown): CellularError {
    if (typeof value === 'object' && value !== null) {
      const v = value as Record<string, unknown>;
      const code = typeof v.code === 'string' && Object.hasOwn(ErrorCodes, v.code) ? (v.code as ErrorCode) : 'CELL_ERR_REMOTE';
      const message = typeof v.message === 'string' ? v.message : 'remote error';
      return new CellularError(code, message, typeof v.cell === 'string' ? { cell: v.cell } : {});
    }
    return new CellularError('CELL_ERR_REMOTE', 'remote error without detail');
  }
}

export function isCellularError(e: unknown, code?: ErrorCode): e is CellularError {
  return e instanceof CellularError && (code === undefined || e.code === code);
}

/** Throws CELL_ERR_ABORTED with the signal's reason as cause, p-queue style. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CellularError('CELL_ERR_ABORTED', 'operation aborted', { cause: signal.reason });
}
