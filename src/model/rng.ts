/**
 * mulberry32: a small, fast, well-mixed 32-bit PRNG, so that weight initialisation, splits, shuffles and
 * bootstrap resamples are identical for the same seed on every machine (Math.random cannot be seeded).
 * Not for crypto. The demo model's committed hashes (models/demo/demo.json) depend on this exact stream.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates shuffle of a copy, driven by `rand` (e.g. `seededRandom(seed)`). */
export function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
