/**
 * The one msgpack configuration of the organism, for everything that is signed, compared
 * byte for byte, or crosses the wire: hormones, certificates, replies. No records (every
 * message stands alone, no structures shared between processes), maps as plain objects,
 * variable map sizes, no extension types beyond msgpack's own, 64-bit ints as numbers.
 * One configuration means one canonical form: what one module encodes, another re-encodes
 * to the same bytes.
 */
import { Packr } from 'msgpackr';

export const codec = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true, moreTypes: false, int64AsType: 'number' });
