// A deadline for a promise that has none of its own (a library call that could hang).

/**
 * Settle as `p` settles, or reject after `ms` milliseconds with an Error of code ETIMEDOUT and
 * `message` (default "timed out"); the timer does not outlive `p`. `p` itself is not cancelled.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, message = "timed out"): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(Object.assign(new Error(message), { code: "ETIMEDOUT" })), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
