/**
 * HMAC-SHA256 (RFC 2104, FIPS 180-4) for one key and many short messages, as Herald's tokens need: a webhook
 * campaign signs one per message and the pixel verifies one per hit.
 *
 * Node's `createHmac` builds a native object and pads the key again on every call, which costs more than the
 * hashing of a 40-byte message. Here the key's inner and outer pads are compressed once, in the constructor,
 * so a message costs the compressions of its own blocks plus one for the outer hash, with no allocation
 * except the 32-byte result. The output is the standard HMAC (the unit tests hold it to `createHmac` on
 * random keys and messages), so tokens signed either way verify either way.
 */
import { createHash } from 'node:crypto';

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
  0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
  0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
  0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
  0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
  0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
const BLOCK = 64;

/** the message schedule, shared: compression runs to the end without yielding */
const W = new Int32Array(64);

/** One SHA-256 compression of the 64 bytes of `buf` at `off` into the state `h`. */
function compress(h: Int32Array, buf: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++) {
    const j = off + i * 4;
    W[i] = (buf[j]! << 24) | (buf[j + 1]! << 16) | (buf[j + 2]! << 8) | buf[j + 3]!;
  }
  for (let i = 16; i < 64; i++) {
    const x = W[i - 15]!;
    const y = W[i - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
  }
  let a = h[0]!;
  let b = h[1]!;
  let c = h[2]!;
  let d = h[3]!;
  let e = h[4]!;
  let f = h[5]!;
  let g = h[6]!;
  let k = h[7]!;
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (k + S1 + ((e & f) ^ (~e & g)) + K[i]! + W[i]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    k = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  h[0] = (h[0]! + a) | 0;
  h[1] = (h[1]! + b) | 0;
  h[2] = (h[2]! + c) | 0;
  h[3] = (h[3]! + d) | 0;
  h[4] = (h[4]! + e) | 0;
  h[5] = (h[5]! + f) | 0;
  h[6] = (h[6]! + g) | 0;
  h[7] = (h[7]! + k) | 0;
}

/** The state after one block of the key XOR `pad`: where every HMAC with this key starts. */
function padState(key: Buffer, pad: number): Int32Array {
  const block = new Uint8Array(BLOCK);
  block.set(key);
  for (let i = 0; i < BLOCK; i++) block[i]! ^= pad;
  const h = new Int32Array(IV);
  compress(h, block, 0);
  return h;
}

export class HmacSha256 {
  private readonly inner: Int32Array;
  private readonly outer: Int32Array;
  /** the working state and the message blocks, reused: a digest runs to the end without yielding */
  private readonly state = new Int32Array(8);
  private buf = new Uint8Array(4 * BLOCK);

  constructor(key: string | Buffer) {
    let k = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
    // RFC 2104: a key longer than the block is hashed first.
    if (k.length > BLOCK) k = createHash('sha256').update(k).digest();
    this.inner = padState(k, 0x36);
    this.outer = padState(k, 0x5c);
  }

  /** HMAC-SHA256 of the UTF-8 bytes of `message`. */
  digest(message: string): Buffer {
    // Room for the message, the 0x80 byte and the 8-byte length, in whole blocks (a UTF-8 character is at
    // most 3 bytes per UTF-16 unit).
    const room = Math.ceil((message.length * 3 + 9) / BLOCK) * BLOCK;
    if (this.buf.length < room) this.buf = new Uint8Array(room);
    const buf = this.buf;
    let n = 0;
    for (; n < message.length; n++) {
      const c = message.charCodeAt(n);
      if (c > 0x7f) break;
      buf[n] = c;
    }
    // Past the ASCII prefix, let Buffer encode the rest (surrogate pairs, lone surrogates as U+FFFD).
    if (n < message.length) n += Buffer.from(buf.buffer, buf.byteOffset, buf.length).write(message.slice(n), n, 'utf8');
    const end = Math.ceil((n + 9) / BLOCK) * BLOCK;
    buf.fill(0, n, end);
    buf[n] = 0x80;
    // Bit length of the inner message: the key block and the message. Herald's messages are far below 2^29
    // bytes, so the high word of the 64-bit length is 0.
    const bits = (BLOCK + n) * 8;
    buf[end - 4] = bits >>> 24;
    buf[end - 3] = bits >>> 16;
    buf[end - 2] = bits >>> 8;
    buf[end - 1] = bits;
    const h = this.state;
    h.set(this.inner);
    for (let off = 0; off < end; off += BLOCK) compress(h, buf, off);
    // The outer hash: the outer key block (already in its state), then the 32-byte inner digest.
    for (let i = 0; i < 8; i++) {
      const v = h[i]!;
      buf[i * 4] = v >>> 24;
      buf[i * 4 + 1] = v >>> 16;
      buf[i * 4 + 2] = v >>> 8;
      buf[i * 4 + 3] = v;
    }
    buf.fill(0, 32, BLOCK);
    buf[32] = 0x80;
    buf[62] = ((BLOCK + 32) * 8) >>> 8;
    buf[63] = ((BLOCK + 32) * 8) & 0xff;
    h.set(this.outer);
    compress(h, buf, 0);
    const out = Buffer.allocUnsafe(32);
    for (let i = 0; i < 8; i++) out.writeInt32BE(h[i]!, i * 4);
    return out;
  }
}
