/**
 * The telemetry stream protocol, version 1, shared by the gateway (sender)
 * and the reference receiver (control-plane-dev/ imports it from above; the
 * daemon never imports the receiver): message shapes, their validation, and
 * the signature over control-plane commands. docs/telemetry-protocol.md is
 * the prose version of this file.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SUBPROTOCOL = 'scheduler-gateway-telemetry.v1';
export const STREAM_PATH = '/v1/stream';
export const CLUSTER_HEADER = 'x-scheduler-gateway-cluster';
/** Commands older or newer than this (by their `issued` time) are refused. */
export const COMMAND_WINDOW_MS = 5 * 60 * 1000;
/** Bound on any message the gateway accepts from the control plane. */
export const MAX_INBOUND_MESSAGE_BYTES = 64 * 1024;

export interface BatchMessage {
  readonly type: 'batch';
  readonly v: 1;
  readonly cluster: string;
  readonly seq: number;
  readonly created: string;
  readonly samples: readonly unknown[];
  readonly scheduler: { readonly ok: boolean; readonly error?: string };
}

export interface AckMessage { readonly type: 'ack'; readonly seq: number; readonly duplicate?: boolean }
export interface NackMessage { readonly type: 'nack'; readonly seq: number; readonly error: string }

export interface CommandMessage {
  readonly type: 'command';
  readonly id: string;
  readonly cluster: string;
  /** ISO 8601 time of signing: the receiver re-signs a command each time it (re)sends it. */
  readonly issued: string;
  readonly name: string;
  readonly args: Readonly<Record<string, string>>;
  /** base64url HMAC-SHA256 over canonicalCommand(), keyed by commandKey(credential). */
  readonly sig: string;
}

export interface CommandResultMessage {
  readonly type: 'command-result';
  readonly id: string;
  readonly ok: boolean;
  readonly duplicate?: boolean;
  readonly error?: string;
}

export type Inbound = AckMessage | NackMessage | CommandMessage;

const ID = /^[A-Za-z0-9_-]{8,64}$/;
const ARG_NAME = /^[a-z][a-z0-9_]{0,31}$/;

/** Validates a message from the control plane; returns a reason string when it is not one. */
export function parseInbound(text: string): Inbound | string {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return 'not an object';
  const o = m as Record<string, unknown>;
  switch (o['type']) {
    case 'ack':
      if (!isSeq(o['seq'])) return 'ack without a valid seq';
      return { type: 'ack', seq: o['seq'] as number, duplicate: o['duplicate'] === true };
    case 'nack':
      if (!isSeq(o['seq'])) return 'nack without a valid seq';
      return { type: 'nack', seq: o['seq'] as number, error: typeof o['error'] === 'string' ? o['error'].slice(0, 200) : 'unspecified' };
    case 'command': {
      const { id, cluster, issued, name, args, sig } = o;
      if (typeof id !== 'string' || !ID.test(id)) return 'command without a valid id';
      if (typeof cluster !== 'string' || cluster.length > 253) return 'command without a valid cluster';
      if (typeof issued !== 'string' || Number.isNaN(Date.parse(issued))) return 'command without a valid issued time';
      if (typeof name !== 'string' || !/^[a-z][a-z0-9-]{0,63}$/.test(name)) return 'command without a valid name';
      if (typeof sig !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(sig)) return 'command without a valid signature';
      if (args === null || typeof args !== 'object' || Array.isArray(args)) return 'command args must be an object';
      const clean: Record<string, string> = {};
      for (const [k, v] of Object.entries(args as Record<string, unknown>)) {
        // 8192: an STS session token runs to a few kilobytes; the whole message stays under MAX_INBOUND_MESSAGE_BYTES.
        if (!ARG_NAME.test(k) || typeof v !== 'string' || v.length > 8192) return `command arg ${JSON.stringify(k.slice(0, 32))} is not a short string`;
        clean[k] = v;
      }
      return { type: 'command', id, cluster, issued, name, args: clean, sig };
    }
    default:
      return 'unknown message type';
  }
}

function isSeq(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

/**
 * The signing key is derived from the cluster credential rather than being
 * the credential itself, so the bearer secret is never used directly as a MAC key.
 */
export function commandKey(credential: string): Buffer {
  return createHmac('sha256', credential).update('scheduler-gateway command key v1').digest();
}

/** Everything the signature covers, in a fixed order, args sorted by name. */
export function canonicalCommand(c: Omit<CommandMessage, 'type' | 'sig'>): string {
  const args = Object.keys(c.args).sort().map((k) => [k, c.args[k]]);
  return JSON.stringify(['scheduler-gateway command v1', c.cluster, c.id, c.issued, c.name, args]);
}

export function signCommand(credential: string, c: Omit<CommandMessage, 'type' | 'sig'>): CommandMessage {
  const sig = createHmac('sha256', commandKey(credential)).update(canonicalCommand(c)).digest('base64url');
  return { type: 'command', ...c, sig };
}

export function verifyCommandSignature(key: Buffer, c: CommandMessage): boolean {
  const want = createHmac('sha256', key).update(canonicalCommand(c)).digest();
  const got = Buffer.from(c.sig, 'base64url');
  return got.length === want.length && timingSafeEqual(got, want);
}
