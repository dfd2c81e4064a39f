/**
 * Waiting for something, at most so long. A bare `Promise.race([p, sleep(ms)])` leaves its
 * timer running once `p` wins, and a pending timer holds a Node process open: a test worker
 * whose teardown raced grow's exit against 15 s stayed alive 15 s after its last test (about
 * two minutes of every CI run), and a grow that had stopped its broker lingered 5 s.
 */

/** `p`'s value, or `fallback` once `ms` have passed, whichever comes first; the timer is cleared either way. */
export function within<T, F>(p: PromiseLike<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([Promise.resolve(p), late]).finally(() => clearTimeout(timer));
}
