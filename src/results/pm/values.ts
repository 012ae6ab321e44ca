/**
 * The Real World Value Mapping of a Parametric Map (PS3.3 C.7.6.16.2.11, linear form): stored values
 * first..last map to slope · stored + intercept. Browser-safe (no Node modules): the plugin's viewer and
 * the OHIF extension use it as well as the Node reader.
 */
export interface LinearValueMapping { first: number; last: number; slope: number; intercept: number }

/** Real world values of `stored`; a stored value outside first..last has no mapping and becomes NaN. */
export function realWorldValues(stored: ArrayLike<number>, m: LinearValueMapping): Float32Array {
  const out = new Float32Array(stored.length);
  for (let i = 0; i < stored.length; i++) {
    const v = stored[i]!;
    out[i] = v < m.first || v > m.last ? Number.NaN : v * m.slope + m.intercept;
  }
  return out;
}
