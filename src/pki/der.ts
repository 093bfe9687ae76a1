/**
 * The subset of DER (X.690) the encrypted key files need, read and written
 * with no dependency: one-byte tags, definite lengths, SEQUENCE, INTEGER,
 * OCTET STRING, OBJECT IDENTIFIER. A key file may have been planted, so the
 * reader checks every length against the bytes left, bounds the nesting and
 * refuses anything outside the subset (high tag numbers, indefinite lengths,
 * trailing bytes).
 */

export const TAG = { INTEGER: 0x02, OCTET_STRING: 0x04, OID: 0x06, SEQUENCE: 0x30 } as const;

export interface DerNode {
  /** The identifier octet (class, constructed bit and tag number). */
  readonly tag: number;
  readonly content: Buffer;
  /** The elements of a constructed node, in order. */
  readonly children: readonly DerNode[];
}

export class DerError extends Error {
  override name = 'DerError';
}

const CONSTRUCTED = 0x20;
const MAX_DEPTH = 16;
const MAX_LENGTH_BYTES = 4;

/** Parses one element that spans all of `der`. Throws DerError. */
export function decodeDer(der: Buffer): DerNode {
  const [node, end] = readNode(der, 0, 0);
  if (end !== der.length) throw new DerError(`${der.length - end} bytes after the DER element`);
  return node;
}

function readNode(buf: Buffer, pos: number, depth: number): [DerNode, number] {
  if (depth > MAX_DEPTH) throw new DerError('DER nested too deeply');
  if (pos + 2 > buf.length) throw new DerError('truncated DER header');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not supported');
  let len = buf[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('indefinite length');
    if (n > MAX_LENGTH_BYTES || start + n > buf.length) throw new DerError('bad DER length');
    len = buf.readUIntBE(start, n);
    start += n;
  }
  const end = start + len;
  if (end > buf.length) throw new DerError('DER length beyond the data');
  const content = buf.subarray(start, end);
  const children: DerNode[] = [];
  if (tag & CONSTRUCTED) {
    for (let p = start; p < end;) {
      const [child, next] = readNode(buf.subarray(0, end), p, depth + 1);
      children.push(child);
      p = next;
    }
  }
  return [{ tag, content, children }, end];
}

/** The dotted form of an OBJECT IDENTIFIER's content. */
export function oidToString(content: Buffer): string {
  if (content.length === 0) throw new DerError('empty OID');
  const arcs: number[] = [];
  let v = 0;
  for (const b of content) {
    if (v === 0 && b === 0x80) throw new DerError('non-minimal OID arc');
    v = v * 128 + (b & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) throw new DerError('OID arc too large');
    if (!(b & 0x80)) {
      arcs.push(v);
      v = 0;
    }
  }
  if (content[content.length - 1]! & 0x80) throw new DerError('truncated OID');
  const first = arcs.shift()!;
  const top = Math.min(2, Math.floor(first / 40));
  return [top, first - 40 * top, ...arcs].join('.');
}

export function encodeDer(tag: number, content: Buffer): Buffer {
  const n = content.length;
  if (n < 0x80) return Buffer.concat([Buffer.from([tag, n]), content]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(n);
  const bytes = len.subarray(len.findIndex((b) => b !== 0));
  return Buffer.concat([Buffer.from([tag, 0x80 | bytes.length]), bytes, content]);
}

export const derSequence = (items: readonly Buffer[]) => encodeDer(TAG.SEQUENCE, Buffer.concat(items));
export const derOctets = (b: Buffer) => encodeDer(TAG.OCTET_STRING, b);

/** A non-negative safe integer, in the fewest bytes that keep it positive. */
export function derInteger(n: number): Buffer {
  let hex = n.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = '00' + hex;
  return encodeDer(TAG.INTEGER, Buffer.from(hex, 'hex'));
}

export function derOid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const arcs = [40 * a! + b!, ...rest];
  const bytes = arcs.flatMap((arc) => {
    const out = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) out.unshift(0x80 | (v & 0x7f));
    return out;
  });
  return encodeDer(TAG.OID, Buffer.from(bytes));
}
