/**
 * Subject, stream and bucket names. Every name an organism uses is built here and carries
 * its id, so several organisms (and parallel tests) share one NATS without seeing each
 * other. Stream and bucket names may not contain dots, so they use `org_<id>_<name>`.
 */
import { CellularError } from '../wire/errors.ts';

/** Organism ids become subject tokens and stream names: keep them plain. */
export const ORGANISM_ID = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** Cell ids are subject tokens too. */
export const CELL_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;

export type CellVerb = 'ping' | 'info' | 'stats' | 'differentiate';

export class Namespace {
  readonly id: string;
  readonly prefix: string;

  constructor(id: string) {
    if (!ORGANISM_ID.test(id)) {
      throw new CellularError('GENOME_ERR_INVALID', `organism id must be 1-32 lowercase letters, digits or dashes, received ${JSON.stringify(id)}`);
    }
    this.id = id;
    this.prefix = `org.${id}`;
  }

  /**
   * Where `from` publishes hormones of one kind (`*` for every sender). The sender's id is in
   * the subject so the broker can hold each identity to its own (organism/kernel/permissions.ts).
   */
  hormone(kind: string, from: string): string {
    return `${this.prefix}.hormone.${kind}.${from}`;
  }

  /** Wildcard over every hormone of this organism. */
  get hormones(): string {
    return `${this.prefix}.hormone.>`;
  }

  /** A request addressed to one cell. */
  cell(cellId: string, verb: CellVerb): string {
    return `${this.prefix}.cell.${cellId}.${verb}`;
  }

  /** A request every cell answers (scatter/gather). */
  cells(verb: CellVerb): string {
    return `${this.prefix}.cells.${verb}`;
  }

  /** A tissue endpoint, served in a queue group named after the tissue. */
  tissue(tissue: string, endpoint: string): string {
    return `${this.prefix}.tissue.${tissue}.${endpoint}`;
  }

  /** Any living cell answers with its census view (queue group `census`). */
  get census(): string {
    return `${this.prefix}.census`;
  }

  /**
   * A newcomer's ask for every host's whole digest (an observer's census starts empty, and a
   * digest otherwise carries only the rows that changed): each grow makes its next digest whole.
   */
  get digestAsk(): string {
    return `${this.prefix}.digest.ask`;
  }

  /**
   * A newborn cell's ask for every host's whole digest, answered to its reply inbox alone
   * (cells may publish here, not on digestAsk: no cell can make a digest whole for everyone).
   */
  get digestWhole(): string {
    return `${this.prefix}.digest.whole`;
  }

  /** Credential requests, answered by grow (queue group `mint`, organism/grow/mint.ts). */
  get mint(): string {
    return `${this.prefix}.mint`;
  }

  /** Operator requests (controls from the dashboard), answered by grow, which holds the root key. */
  get operator(): string {
    return `${this.prefix}.operator`;
  }

  /** Operator requests for one host's grow (a kill of a cell there, relayed by another host's operator). */
  operatorOn(host: string): string {
    return `${this.prefix}.operator.${host}`;
  }

  /** Growth requests to one host: its grow (the host agent) makes a cell a homeostasis decision placed there. */
  place(host: string): string {
    return `${this.prefix}.place.${host}`;
  }

  /** What the dashboard writes into the flight recorder besides hormones (census frames). */
  recorder(kind: string): string {
    return `${this.prefix}.recorder.${kind}`;
  }

  bucket(name: string): string {
    return `org_${this.id}_${name}`;
  }

  stream(name: string): string {
    return `org_${this.id}_${name}`;
  }
}
