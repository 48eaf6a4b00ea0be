'use strict';

/** 'a=1&b=2' -> { a: '1', b: '2' }. A leading '?' is ignored. */
function parseQuery(query) {
  const out = {};
  const body = query.startsWith('?') ? query.slice(1) : query;
  for (const pair of body.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = eq === -1 ? pair : pair.slice(0, eq);
    const value = eq === -1 ? '' : pair.slice(eq + 1);
    // TODO: decode percent-encoding and '+' (a space) in keys and values
    out[key] = value;
  }
  return out;
}

/** Deep equality of primitives and arrays. */
function deepEqual(a, b) {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  // TODO: compare plain objects too: the same keys, with deeply equal values
  return false;
}

/** Compares version strings such as '1.2.3': -1, 0 or 1. */
function compareVersions(a, b) {
  // TODO: compare numerically part by part ('1.10' is greater than '1.9'), and treat missing
  //       parts as 0 ('1.2' equals '1.2.0')
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

module.exports = { parseQuery, deepEqual, compareVersions };
