/**
 * How deep a JSON text nests, found before it is parsed: no request netctl
 * takes nests deeper than a dozen levels, and a body nested 200,000 deep
 * parses fine but overflows the stack of whatever walks it next (zod's
 * messages, JSON.stringify, a log line).
 */

/** Deeper than any request netctl takes, by far. */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPENERS = new Set([0x5b, 0x7b]); // [ {
const CLOSERS = new Set([0x5d, 0x7d]); // ] }

/** True when the text opens more than `limit` arrays and objects inside each other. */
export function nestsDeeperThan(text: string, limit = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (OPENERS.has(c)) {
      if (++depth > limit) return true;
    } else if (CLOSERS.has(c)) depth--;
  }
  return false;
}
