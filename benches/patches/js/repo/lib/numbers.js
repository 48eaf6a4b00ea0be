'use strict';

/** Limits x to the range [lo, hi]. */
function clamp(x, lo, hi) {
  // TODO: throw a RangeError when lo is greater than hi
  return Math.min(Math.max(x, lo), hi);
}

/** The sum of an array of numbers. */
function sum(values) {
  let total = 0;
  for (const v of values) {
    // TODO: skip null and undefined entries instead of adding them
    total += v;
  }
  return total;
}

/** A list of numbers from start (included) to end (excluded). */
function range(start, end, step = 1) {
  // TODO: support a negative step that counts down (range(5, 0, -2) is [5, 3, 1]),
  //       and throw a RangeError when step is 0
  const out = [];
  for (let i = start; i < end; i += step) {
    out.push(i);
  }
  return out;
}

/** Whether year is a leap year in the Gregorian calendar. */
function isLeapYear(year) {
  // TODO: years divisible by 100 are not leap years, unless they are divisible by 400
  return year % 4 === 0;
}

module.exports = { clamp, sum, range, isLeapYear };
