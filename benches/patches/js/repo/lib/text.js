'use strict';

/** Upper-cases the first character of s. */
function capitalize(s) {
  // TODO: return an empty string for an empty, null or undefined input instead of throwing
  return s[0].toUpperCase() + s.slice(1);
}

/** Cuts s to at most n characters. */
function truncate(s, n) {
  if (s.length <= n) {
    return s;
  }
  // TODO: end a cut string with '...', keeping the whole result at most n characters long
  return s.slice(0, n);
}

/** Human-readable size: 512 -> '512 B', 1536 -> '1.5 KB'. */
function formatBytes(n) {
  if (n < 1024) {
    return `${n} B`;
  }
  // TODO: use MB from 1024 ** 2 bytes and GB from 1024 ** 3 bytes, with one decimal like KB
  return `${(n / 1024).toFixed(1)} KB`;
}

module.exports = { capitalize, truncate, formatBytes };
