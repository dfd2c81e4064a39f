/**
 * The birth packet: everything a new cell process needs, written by its maker to the
 * child's stdin and closed. Secrets (the cell's private seed) never appear on the command
 * line or in the environment, where other users could read them.
 */
import { CellularError } from '../organism/wire/errors.ts';
import { validateGenome, type Genome } from '../organism/kernel/genome/index.ts';
import { CELL_ID, ORGANISM_ID } from '../organism/kernel/namespace.ts';

export interface BirthPacket {
  v: 1;
  organism: string;
  /** NATS servers to connect to. */
  servers: string[];
  /** The private broker's token (never on the command line or in the environment). */
  token: string | null;
  /**
   * The cell's broker credential when the broker runs in operator mode: a user JWT for the
   * cell's own key (cell.seed answers the server's challenge), with its tissue's permissions.
   */
  jwt?: string | null;
  /** The organism CA (PEM, public) when the servers speak TLS (cluster mode). */
  tlsCa?: string | null;
  genome: Genome;
  /** Organism root public key, hex. */
  rootPub: string;
  cell: {
    id: string;
    tissue: string;
    /** Resolved path of the tissue module (.js). */
    module: string;
    parent: string | null;
    host: string;
    born: number;
    /** Ed25519 seed, hex. */
    seed: string;
    /** msgpack-encoded certificate, base64. */
    cert: string;
  };
  /** State dir (logs go to `<stateDir>/logs/<cell>.log`). */
  stateDir: string;
  /** Where relative tissue module paths are anchored (the genome file's directory), for differentiation and children. */
  genomeDir?: string | null;
}

const HEX32 = /^[0-9a-f]{64}$/;

/** Parses and checks an untrusted birth packet (JSON text). */
export function parseBirthPacket(text: string): BirthPacket {
  const bad = (why: string) => new CellularError('CELL_ERR_BIRTH_PACKET', `birth packet rejected: ${why}`);
  let p: BirthPacket;
  try {
    p = JSON.parse(text) as BirthPacket;
  } catch (cause) {
    throw new CellularError('CELL_ERR_BIRTH_PACKET', `birth packet is not JSON (${text.length} bytes on stdin)`, { cause });
  }
  if (typeof p !== 'object' || p === null || p.v !== 1) throw bad('v is not 1');
  if (typeof p.organism !== 'string' || !ORGANISM_ID.test(p.organism)) throw bad('organism id malformed');
  if (!Array.isArray(p.servers) || p.servers.length === 0 || !p.servers.every((s) => typeof s === 'string')) throw bad('servers must be a non-empty list of URLs');
  if (p.token !== null && typeof p.token !== 'string') throw bad('token must be a string or null');
  if (p.jwt !== undefined && p.jwt !== null && (typeof p.jwt !== 'string' || p.jwt.length > 16_384)) throw bad('jwt must be a string or null');
  if (p.tlsCa !== undefined && p.tlsCa !== null && (typeof p.tlsCa !== 'string' || p.tlsCa.length > 16_384 || !p.tlsCa.includes('BEGIN CERTIFICATE'))) throw bad('tlsCa must be a PEM certificate or null');
  if (typeof p.rootPub !== 'string' || !HEX32.test(p.rootPub)) throw bad('rootPub must be 32 bytes of hex');
  if (typeof p.stateDir !== 'string' || p.stateDir.length === 0) throw bad('stateDir missing');
  if (p.genomeDir !== undefined && p.genomeDir !== null && typeof p.genomeDir !== 'string') throw bad('genomeDir must be a string or null');
  const c = p.cell;
  if (typeof c !== 'object' || c === null) throw bad('cell missing');
  if (typeof c.id !== 'string' || !CELL_ID.test(c.id)) throw bad('cell.id malformed');
  if (typeof c.tissue !== 'string' || typeof c.module !== 'string' || typeof c.host !== 'string') throw bad('cell.tissue, cell.module and cell.host must be strings');
  if (c.parent !== null && (typeof c.parent !== 'string' || !CELL_ID.test(c.parent))) throw bad('cell.parent malformed');
  if (typeof c.born !== 'number' || typeof c.seed !== 'string' || !HEX32.test(c.seed) || typeof c.cert !== 'string') throw bad('cell.born, cell.seed or cell.cert malformed');
  try {
    p.genome = validateGenome(p.genome) as Genome;
  } catch (cause) {
    throw new CellularError('CELL_ERR_BIRTH_PACKET', `birth packet genome invalid: ${(cause as Error).message}`, { cause });
  }
  return p;
}
