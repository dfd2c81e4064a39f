/**
 * Test safety net: if a test worker dies without running its teardowns (an uncaught
 * exception), the processes it started are detached and would outlive it. Everything a
 * helper starts registers a synchronous reaper here, run at process exit.
 */
const reapers = new Set<() => void>();
let installed = false;

/** Registers `reap` (synchronous) for process exit; returns a function that unregisters it. */
export function reapOnExit(reap: () => void): () => void {
  if (!installed) {
    installed = true;
    process.on('exit', () => {
      for (const r of reapers) {
        try {
          r();
        } catch {
          // best effort: keep reaping the others
        }
      }
    });
  }
  reapers.add(reap);
  return () => reapers.delete(reap);
}
