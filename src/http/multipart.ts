// multipart/form-data (RFC 7578) read in place: each part's name, filename and content type,
// and its bytes as a view of the body, never a copy. An audio upload (25 MiB) is found by a few
// native searches for its boundary, where a full form parser would copy the file and hold the
// event loop for tens of milliseconds; the upload sent on is the same bytes, the parts the
// gateway rewrites aside (src/engines/audio.ts).

import { FabricError } from '../core/errors.ts';

export interface Part {
  name: string;
  /** Set for a file part (a filename in its Content-Disposition, empty allowed). */
  filename: string | undefined;
  contentType: string | undefined;
  /** The part as sent, its headers and content, without the boundary line: what is forwarded unchanged. */
  raw: Buffer;
  /** Its content. */
  body: Buffer;
}

const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');
/** A part's headers: a few short lines (Content-Disposition, Content-Type). */
const MAX_PART_HEAD = 8 * 1024;

const bad = (why: string): FabricError => new FabricError('invalid_request', `the multipart body cannot be read: ${why}`);

/** The boundary a multipart/form-data Content-Type names, or undefined when it names none. */
export function boundaryOf(contentType: string): string | undefined {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))/i.exec(contentType);
  return m === null ? undefined : (m[1] ?? m[2]);
}

/** A Content-Disposition parameter's value: quoted (with \" and \\ escapes) or a token. */
function param(disposition: string, name: string): string | undefined {
  const m = new RegExp(`;\\s*${name}=(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`, 'i').exec(disposition);
  if (m === null) return undefined;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2];
}

/** The parts of a body, in order; a 400 naming what is wrong when it is not well formed. */
export function readParts(body: Buffer, boundary: string): Part[] {
  const delimiter = Buffer.from(`--${boundary}`);
  // The first delimiter may follow a preamble; every later one follows a CRLF.
  let at = body.indexOf(delimiter);
  if (at === -1) throw bad('its boundary does not occur in it');
  const next = Buffer.concat([CRLF, delimiter]);
  const parts: Part[] = [];
  for (;;) {
    const after = at + delimiter.length;
    // "--" after a delimiter closes the body.
    if (body[after] === 0x2d && body[after + 1] === 0x2d) return parts;
    if (body[after] !== 0x0d || body[after + 1] !== 0x0a) throw bad('a boundary is not followed by a line break');
    const start = after + 2;
    const end = body.indexOf(next, start);
    if (end === -1) throw bad('it ends before its closing boundary');
    const headEnd = body.indexOf(HEAD_END, start);
    if (headEnd === -1 || headEnd > end) throw bad('a part has no blank line after its headers');
    if (headEnd - start > MAX_PART_HEAD) throw bad('a part\'s headers are too long');
    let name: string | undefined;
    let filename: string | undefined;
    let contentType: string | undefined;
    for (const line of body.toString('utf8', start, headEnd).split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw bad(`a part header is not "Name: value": ${JSON.stringify(line.slice(0, 60))}`);
      const field = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (field === 'content-disposition') {
        if (!/^form-data\s*(;|$)/i.test(value)) throw bad(`a part is not form-data: ${JSON.stringify(value.slice(0, 60))}`);
        name = param(value, 'name');
        filename = param(value, 'filename');
      } else if (field === 'content-type') contentType = value;
    }
    if (name === undefined) throw bad('a part has no name in its Content-Disposition');
    parts.push({ name, filename, contentType, raw: body.subarray(start, end), body: body.subarray(headEnd + 4, end) });
    at = end + 2;
  }
}
