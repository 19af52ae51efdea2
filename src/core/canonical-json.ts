// JSON written in one order whatever order its objects' keys came in: what the response cache
// keys requests by.

/** JSON with every object's keys sorted: the same request however its client ordered them. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) {
    let s = '[';
    for (let i = 0; i < v.length; i++) s += (i === 0 ? '' : ',') + canonicalJson(v[i]);
    return s + ']';
  }
  return canonicalObjectJson(v as Record<string, unknown>, (_k, x) => x === undefined);
}

/** An object as canonical JSON, its keys sorted, those `skip` says left out. */
export function canonicalObjectJson(o: Record<string, unknown>, skip: (k: string, x: unknown) => boolean): string {
  let s = '{';
  let first = true;
  for (const k of Object.keys(o).sort()) {
    const x = o[k];
    if (skip(k, x)) continue;
    s += (first ? '' : ',') + JSON.stringify(k) + ':' + canonicalJson(x);
    first = false;
  }
  return s + '}';
}
