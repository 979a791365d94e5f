// BLAKE3 (the default hash mode, 32-byte output), for the auditor view: WebCrypto has no
// blake3, and the journal chains entries with it (`ledger::journal`: hash_n =
// blake3(hash_{n-1} ‖ canonical bytes of entry n's body)). A plain port of the reference
// implementation (github.com/BLAKE3-team/BLAKE3, `reference_impl`): 1,024-byte chunks of
// 64-byte blocks, chunk chaining values merged in a binary tree. Checked against the Rust
// crate by `tests/tests/console` (every hash of a real journal, entries over one chunk
// included) and against the published hashes of "" and "abc" below.

const IV = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
const PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];
const CHUNK_START = 1;
const CHUNK_END = 2;
const PARENT = 4;
const ROOT = 8;
const BLOCK_BYTES = 64;
const CHUNK_BYTES = 1024;

const rotr = (x, n) => (x >>> n) | (x << (32 - n));

function g(s, a, b, c, d, x, y) {
  s[a] = (s[a] + s[b] + x) | 0;
  s[d] = rotr(s[d] ^ s[a], 16);
  s[c] = (s[c] + s[d]) | 0;
  s[b] = rotr(s[b] ^ s[c], 12);
  s[a] = (s[a] + s[b] + y) | 0;
  s[d] = rotr(s[d] ^ s[a], 8);
  s[c] = (s[c] + s[d]) | 0;
  s[b] = rotr(s[b] ^ s[c], 7);
}

/** The compression function: 16 words out (the first 8 are the next chaining value). */
function compress(cv, block, counter, blockLength, flags) {
  const s = new Uint32Array(16);
  s.set(cv, 0);
  s.set(IV.subarray(0, 4), 8);
  s[12] = counter % 0x100000000;
  s[13] = Math.floor(counter / 0x100000000);
  s[14] = blockLength;
  s[15] = flags;
  let m = Uint32Array.from(block);
  for (let round = 0; round < 7; round += 1) {
    g(s, 0, 4, 8, 12, m[0], m[1]);
    g(s, 1, 5, 9, 13, m[2], m[3]);
    g(s, 2, 6, 10, 14, m[4], m[5]);
    g(s, 3, 7, 11, 15, m[6], m[7]);
    g(s, 0, 5, 10, 15, m[8], m[9]);
    g(s, 1, 6, 11, 12, m[10], m[11]);
    g(s, 2, 7, 8, 13, m[12], m[13]);
    g(s, 3, 4, 9, 14, m[14], m[15]);
    if (round < 6) m = Uint32Array.from(PERMUTATION, (i) => m[i]);
  }
  for (let i = 0; i < 8; i += 1) {
    s[i] ^= s[i + 8];
    s[i + 8] ^= cv[i];
  }
  return s;
}

/** One 64-byte block (zero-padded) as 16 little-endian words. */
function words(bytes, offset, length) {
  const block = new Uint8Array(BLOCK_BYTES);
  block.set(bytes.subarray(offset, offset + length));
  const view = new DataView(block.buffer);
  return Uint32Array.from({ length: 16 }, (_, i) => view.getUint32(4 * i, true));
}

/** A chunk's last block, not yet compressed: the root flag may still be added. */
function chunkOutput(bytes, start, end, counter) {
  let cv = IV;
  let offset = start;
  let flags = CHUNK_START;
  // Every block but the last is compressed now; an empty chunk is one empty block.
  while (end - offset > BLOCK_BYTES) {
    cv = compress(cv, words(bytes, offset, BLOCK_BYTES), counter, BLOCK_BYTES, flags).subarray(0, 8);
    offset += BLOCK_BYTES;
    flags = 0;
  }
  return { cv, block: words(bytes, offset, end - offset), counter, length: end - offset, flags: flags | CHUNK_END };
}

function parentOutput(left, right) {
  const block = new Uint32Array(16);
  block.set(left, 0);
  block.set(right, 8);
  return { cv: IV, block, counter: 0, length: BLOCK_BYTES, flags: PARENT };
}

const chainingValue = (output) => compress(output.cv, output.block, output.counter, output.length, output.flags).subarray(0, 8);

/** The 32-byte BLAKE3 hash of `bytes` (a Uint8Array). */
export function blake3(bytes) {
  const stack = [];
  const chunks = Math.max(1, Math.ceil(bytes.length / CHUNK_BYTES));
  for (let index = 0; index < chunks - 1; index += 1) {
    let cv = chainingValue(chunkOutput(bytes, index * CHUNK_BYTES, (index + 1) * CHUNK_BYTES, index));
    // Merge completed subtrees: one merge per trailing zero bit of the chunks done so far.
    let total = index + 1;
    while ((total & 1) === 0) {
      cv = chainingValue(parentOutput(stack.pop(), cv));
      total >>= 1;
    }
    stack.push(cv);
  }
  let output = chunkOutput(bytes, (chunks - 1) * CHUNK_BYTES, bytes.length, chunks - 1);
  while (stack.length) output = parentOutput(stack.pop(), chainingValue(output));
  const root = compress(output.cv, output.block, output.counter, output.length, output.flags | ROOT);
  const hash = new Uint8Array(32);
  const view = new DataView(hash.buffer);
  for (let i = 0; i < 8; i += 1) view.setUint32(4 * i, root[i], true);
  return hash;
}

/** Published hashes: a wrong port fails here before it judges a journal. */
export function selfTest() {
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  const empty = hex(blake3(new Uint8Array(0)));
  const abc = hex(blake3(new TextEncoder().encode('abc')));
  return empty === 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262'
    && abc === '6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85';
}
