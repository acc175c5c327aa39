// An imaging study's stream of encrypted chunks, opened on the device: the browser half
// of healthnft.vault.stream (STREAM construction, as age and Tink's streaming AEAD).
//
//   chunk i      AES-256-GCM under the stream key (inside the sealed record's metadata,
//                "stream"), nonce prefix(7) || i (4 bytes, big-endian) || last(1),
//                associated data "healthnft/stream-chunk/v1|" || commitment
//                || i (8 bytes, big-endian) || last(1); stored under sha256(ciphertext)
//   payload      the chunks' plaintexts in order: the study's DICOM instances one after
//                another, each at the offset, of the size and with the sha256 the
//                record's manifest states (records/dicom.py StudyManifest)
//
// Every mismatch — a chunk's digest, its AEAD (wrong key, moved, reordered, dropped,
// truncated or extended stream), the payload's size, an instance's hash — throws
// TamperedError; nothing of the study is returned then.

import { TamperedError, bytes, toHex } from "./crypto.js";

const subtle = globalThis.crypto.subtle;
const AAD = new TextEncoder().encode("healthnft/stream-chunk/v1|");
const FORMAT = "healthnft/stream/v1";

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function counter(i, width) {
  const out = new Uint8Array(width);
  let n = i;
  for (let k = width - 1; k >= 0; k--) { out[k] = n % 256; n = Math.floor(n / 256); }
  return out;
}

async function sha256Hex(data) {
  return toHex(new Uint8Array(await subtle.digest("SHA-256", data)));
}

/**
 * The stream index as the sealed record's metadata holds it, checked for shape.
 * @returns {{key: Uint8Array, prefix: Uint8Array, size: number, chunks: Array<[string, number]>}}
 */
export function streamIndex(meta) {
  const s = meta && meta.stream;
  try {
    if (!s || s.format !== FORMAT || !Array.isArray(s.chunks) || !s.chunks.length) throw 0;
    const index = { key: bytes(s.key), prefix: bytes(s.nonce_prefix),
      size: Number(s.plaintext_size), chunks: s.chunks.map(([d, n]) => [String(d), Number(n)]) };
    if (index.key.length !== 32 || index.prefix.length !== 7 || !(index.size >= 0)) throw 0;
    if (!index.chunks.every(([d]) => /^[0-9a-f]{64}$/.test(d))) throw 0;
    return index;
  } catch (_e) {
    throw new TamperedError("stream index is malformed");
  }
}

/**
 * Decrypt the stream ``index`` of the record committed to ``commitment``; each chunk is
 * fetched with ``fetchChunk(digestHex)`` (its ciphertext bytes) and checked before use.
 * @param {(done: number, total: number) => void} [progress]
 * @returns {Promise<Uint8Array>} the payload
 */
export async function openStream(index, commitment, fetchChunk, progress) {
  const key = await subtle.importKey("raw", index.key, "AES-GCM", false, ["decrypt"]);
  const commit = bytes(commitment);
  const parts = [];
  const n = index.chunks.length;
  for (let i = 0; i < n; i++) {
    const [digest] = index.chunks[i];
    const sealed = new Uint8Array(await fetchChunk(digest));
    if (await sha256Hex(sealed) !== digest) throw new TamperedError(`chunk ${i}: digest`);
    const last = new Uint8Array([i === n - 1 ? 1 : 0]);
    let plain;
    try {
      plain = new Uint8Array(await subtle.decrypt({ name: "AES-GCM",
        iv: concat(index.prefix, counter(i, 4), last),
        additionalData: concat(AAD, commit, counter(i, 8), last), tagLength: 128 }, key, sealed));
    } catch (_e) {
      throw new TamperedError(`chunk ${i}: authentication`);
    }
    parts.push(plain);
    if (progress) progress(i + 1, n);
  }
  const payload = concat(...parts);
  if (payload.length !== index.size) throw new TamperedError("stream size");
  return payload;
}

/**
 * The study's DICOM instances cut from ``payload`` where ``manifest`` says, each checked
 * against its sha256.
 * @returns {Promise<Uint8Array[]>}
 */
export async function instances(manifest, payload) {
  const rows = manifest && Array.isArray(manifest.instances) ? manifest.instances : null;
  if (!rows || !manifest.payload || Number(manifest.payload.size) !== payload.length) {
    throw new TamperedError("manifest does not describe the payload");
  }
  const out = [];
  let offset = 0;
  for (const [i, row] of rows.entries()) {
    if (row.position !== i || row.offset !== offset) throw new TamperedError("manifest order");
    const part = payload.subarray(offset, offset + Number(row.size));
    if (part.length !== Number(row.size) || await sha256Hex(part) !== row.sha256) {
      throw new TamperedError(`instance ${i}: hash`);
    }
    out.push(part);
    offset += part.length;
  }
  if (offset !== payload.length) throw new TamperedError("manifest size");
  return out;
}
