/**
 * Echo tissue: the smallest worker, used by tests and as the example in docs/tissues.md.
 * `echo` returns its request; `burn` keeps the main thread busy for `ms` milliseconds
 * (a CPU loop, to show that a busy cell still pulses); `wait` holds a request for `ms`
 * milliseconds without using the CPU (work that waits on something else, like a database:
 * its load is concurrency, so many cells on two cores can share it); `fail` throws a coded error.
 */
import { CellularError } from '../../organism/wire/errors.ts';
import { defineTissue } from '../tissue.ts';

/** Longest burn a request may ask for, so no request can wedge a cell for long. */
const MAX_BURN_MS = 30_000;

function msOf(request: unknown, endpoint: string): number {
  const ms = (request as { ms?: unknown } | undefined)?.ms;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || ms > MAX_BURN_MS) {
    throw new CellularError('TISSUE_ERR_BAD_REQUEST', `${endpoint} expects {ms: number from 0 to ${MAX_BURN_MS}}, received ${JSON.stringify(request)}`);
  }
  return ms;
}

export default defineTissue({
  name: 'echo',
  capacity: 8,
  endpoints: {
    echo: (request) => request,
    burn: (request) => {
      const ms = msOf(request, 'burn');
      const end = performance.now() + ms;
      let spins = 0;
      while (performance.now() < end) spins++;
      return { ms, spins };
    },
    wait: async (request, ctx) => {
      const ms = msOf(request, 'wait');
      await new Promise((r) => setTimeout(r, ms));
      // Which cell served it: lets a load source see new capacity start serving.
      return { ms, cell: ctx.cell.id };
    },
    fail: () => {
      throw new CellularError('TISSUE_ERR_BAD_REQUEST', 'echo.fail always fails (for tests)');
    },
  },
});
