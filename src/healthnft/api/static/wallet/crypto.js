// The patient's records, opened on the device: the browser half of healthnft.vault.
//
// Byte for byte what the Python side does (tests/api/test_browser_crypto.py checks it):
//   record key   HPKE base mode (RFC 9180), DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
//                AES-256-GCM, info "healthnft/batch-key/v1|" || key id, wrapped = enc || ct
//                (vault/batchkey.py, vault/_primitives.py)
//   DEK          AES-256-GCM under the record key, nonce(12) || ct || tag, associated data
//                "healthnft/record-key/v1|" || commitment (vault/envelope.py)
//   record       AES-256-GCM under the DEK, the commitment as associated data; plaintext
//                header-json || "\n" || canonical bytes (vault/plaintext.py)
//   commitment   sha256("healthnft/record-commitment/v1\0" || salt || canonical)
//                (records/commitment.py)
//   Merkle leaf  keccak256(0x00 || tokenId (32 bytes, big-endian) || commitment),
//          node  keccak256(0x01 || min(a, b) || max(a, b)), proof = siblings, 32 bytes each
//                (ledger/merkle.py)
//   enc key      X25519 private key = HKDF-SHA256(account secret, no salt,
//                "healthnft/x25519/v1", 32 bytes) (vault/_primitives.derive_x25519)
//
// Every check failing - proof, root, key, ciphertext, commitment - throws TamperedError,
// whose message is "tampered"; nothing of the record is returned then.

import {
  Aes256Gcm,
  CipherSuite,
  DhkemX25519HkdfSha256,
  HkdfSha256,
  keccak_256,
  x25519,
} from "../vendor/wallet-crypto-libs.js";

const enc = new TextEncoder();
const subtle = globalThis.crypto.subtle;

const KEK_INFO = enc.encode("healthnft/batch-key/v1|");
const DEK_INFO = enc.encode("healthnft/record-key/v1|");
const COMMIT_DOMAIN = enc.encode("healthnft/record-commitment/v1\0");
const X25519_INFO = enc.encode("healthnft/x25519/v1");
const ED25519_INFO = enc.encode("healthnft/ed25519/v1");
// PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410), so WebCrypto imports the seed.
const ED25519_PKCS8_PREFIX = bytes("302e020100300506032b657004220420");
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

const suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Aes256Gcm(),
});

/** A record, its key or its proof does not match: shown to the patient as "tampered". */
export class TamperedError extends Error {
  /** @param {string} reason which check failed (for logs; the message stays "tampered") */
  constructor(reason) {
    super("tampered");
    this.name = "TamperedError";
    this.reason = reason;
  }
}

/**
 * Bytes from a Uint8Array, an ArrayBuffer or a hex string (with or without 0x).
 * @param {Uint8Array|ArrayBuffer|string} value
 * @returns {Uint8Array}
 */
export function bytes(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (typeof value === "string") {
    const hex = value.startsWith("0x") ? value.slice(2) : value;
    if (hex.length % 2 || /[^0-9a-fA-F]/.test(hex)) throw new TypeError("not a hex string");
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    return out;
  }
  throw new TypeError("expected bytes or a hex string");
}

/** @param {Uint8Array} data @returns {string} lowercase hex, no 0x */
export function toHex(data) {
  return Array.from(data, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {...Uint8Array} parts @returns {Uint8Array} */
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Equal length and bytes, without stopping at the first difference. */
function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** @param {bigint|number|string} tokenId @returns {Uint8Array} 32 bytes, big-endian */
function uint256(tokenId) {
  let n = BigInt(tokenId);
  if (n < 0n || n >= 1n << 256n) throw new RangeError("token id out of uint256 range");
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0; i--, n >>= 8n) out[i] = Number(n & 0xffn);
  return out;
}

/**
 * The salted commitment the chain holds for a record.
 * @param {Uint8Array} canonical the record's canonical bytes
 * @param {Uint8Array} salt 32 bytes
 * @returns {Promise<Uint8Array>} 32 bytes
 */
export async function recomputeCommitment(canonical, salt) {
  if (salt.length !== 32) throw new TypeError("salt must be 32 bytes");
  return new Uint8Array(await subtle.digest("SHA-256", concat(COMMIT_DOMAIN, salt, canonical)));
}

/**
 * The Merkle leaf of a token: keccak256(0x00 || tokenId || commitment).
 * @param {bigint|number|string} tokenId
 * @param {Uint8Array} commitment
 */
export function leafHash(tokenId, commitment) {
  return keccak_256(concat(Uint8Array.of(0), uint256(tokenId), commitment));
}

function compare(a, b) {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/**
 * Does ``proof`` (packed siblings, 32 bytes each) lead from the token's leaf to ``root``?
 * @param {bigint|number|string} tokenId
 * @param {Uint8Array|string} commitment
 * @param {Uint8Array|string} proof
 * @param {Uint8Array|string} root the batch root read from the chain
 * @returns {boolean}
 */
export function verifyProof(tokenId, commitment, proof, root) {
  const packed = bytes(proof);
  if (packed.length % 32) return false;
  let node = leafHash(tokenId, bytes(commitment));
  for (let at = 0; at < packed.length; at += 32) {
    const sibling = packed.subarray(at, at + 32);
    const [a, b] = compare(node, sibling) <= 0 ? [node, sibling] : [sibling, node];
    node = keccak_256(concat(Uint8Array.of(1), a, b));
  }
  return sameBytes(node, bytes(root));
}

/**
 * The participant's X25519 encryption key pair, derived from its account secret as the
 * CLI derives it (a wallet made in the page opens records minted for it, and back).
 * @param {Uint8Array|string} secret the 32-byte secp256k1 account secret
 * @returns {Promise<{privateKey: Uint8Array, publicKey: Uint8Array}>}
 */
export async function encryptionKey(secret) {
  const ikm = await subtle.importKey("raw", bytes(secret), "HKDF", false, ["deriveBits"]);
  const bits = await subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: X25519_INFO }, ikm, 256);
  const privateKey = new Uint8Array(bits);
  return { privateKey, publicKey: x25519.getPublicKey(privateKey) };
}

/**
 * The public key of the participant's did:key (Ed25519), derived from its account secret
 * as the CLI derives it (credentials.did.ed25519_from_secret: HKDF-SHA256, no salt,
 * "healthnft/ed25519/v1"); registered with the wallet so it can prove itself to a node.
 * Ed25519 runs on WebCrypto: the seed is imported only to read its public half (the JWK's
 * "x"), which is all this returns.
 * @param {Uint8Array|string} secret the 32-byte secp256k1 account secret
 * @returns {Promise<Uint8Array>} 32 bytes
 */
export async function didPublicKey(secret) {
  const ikm = await subtle.importKey("raw", bytes(secret), "HKDF", false, ["deriveBits"]);
  const seed = new Uint8Array(await subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: ED25519_INFO }, ikm, 256));
  const key = await subtle.importKey("pkcs8", concat(ED25519_PKCS8_PREFIX, seed), "Ed25519",
    true, ["sign"]);
  seed.fill(0);
  const { x } = await subtle.exportKey("jwk", key);  // base64url, unpadded
  return Uint8Array.from(atob(x.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
}

async function aesGcmOpen(key, sealed, aad) {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new TamperedError("ciphertext too short");
  const k = await subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
  try {
    return new Uint8Array(await subtle.decrypt(
      { name: "AES-GCM", iv: sealed.subarray(0, NONCE_BYTES), additionalData: aad },
      k, sealed.subarray(NONCE_BYTES)));
  } catch {
    throw new TamperedError("AES-GCM authentication failed");
  }
}

/**
 * Unwrap the key that seals a batch's record keys (HPKE, RFC 9180).
 * @param {Uint8Array} privateKey the reader's X25519 private key (32 bytes)
 * @param {Uint8Array} wrapped enc (32 bytes) || ciphertext
 * @param {Uint8Array} keyId the batch reference the key was wrapped under
 */
async function unwrapBatchKey(privateKey, wrapped, keyId) {
  if (wrapped.length <= 32) throw new TamperedError("wrapped key too short");
  try {
    const recipientKey = await suite.kem.importKey("raw", privateKey, false);
    const key = await suite.open(
      { recipientKey, enc: wrapped.slice(0, 32), info: concat(KEK_INFO, keyId) },
      wrapped.slice(32));
    return new Uint8Array(key);
  } catch {
    throw new TamperedError("batch key cannot be unwrapped with this key");
  }
}

/**
 * Open one of the patient's records on the device and check it against the chain.
 *
 * Order: Merkle proof against the root, ciphertext digest (when given), record key, DEK,
 * record, then the commitment recomputed from the decrypted salt and canonical bytes.
 *
 * @param {object} r
 * @param {bigint|number|string} r.tokenId
 * @param {Uint8Array|string} r.ciphertext the stored blob: nonce || ct || tag
 * @param {Uint8Array|string} r.sealedDek the DEK sealed under the record key
 * @param {Uint8Array|string} r.wrappedKek the record key HPKE-wrapped for this reader
 * @param {Uint8Array|string} r.keyId which wrapped key (the catalogue's key_id: batch_ref,
 *   or key_ref once re-keyed); HPKE info
 * @param {Uint8Array|string} r.commitment the token's commitment
 * @param {Uint8Array|string} r.proof packed Merkle siblings
 * @param {Uint8Array|string} r.root the batch's Merkle root, read from the chain
 * @param {Uint8Array|string} r.encPrivateKey the reader's X25519 private key
 * @param {Uint8Array|string} [r.blobDigest] sha256 of the ciphertext, when the node gives it
 * @returns {Promise<{header: {v: number, salt: string, meta: object}, canonical: Uint8Array}>}
 * @throws {TamperedError} when anything does not match or is malformed
 * @throws {TypeError} when encPrivateKey (the caller's own key) is not 32 bytes
 */
export async function openRecord(r) {
  const encPrivateKey = bytes(r.encPrivateKey);
  if (encPrivateKey.length !== 32) throw new TypeError("encPrivateKey must be 32 bytes");
  // Everything else comes from the node: malformed is as good as tampered.
  let commitment, ciphertext, sealedDek, wrappedKek, keyId, digest, proofOk;
  try {
    commitment = bytes(r.commitment);
    ciphertext = bytes(r.ciphertext);
    sealedDek = bytes(r.sealedDek);
    wrappedKek = bytes(r.wrappedKek);
    keyId = bytes(r.keyId);
    digest = r.blobDigest === undefined ? null : bytes(r.blobDigest);
    proofOk = commitment.length === 32 && verifyProof(r.tokenId, commitment, r.proof, r.root);
  } catch {
    throw new TamperedError("malformed record data");
  }
  if (!proofOk) throw new TamperedError("commitment or proof does not match the on-chain root");
  if (digest && !sameBytes(new Uint8Array(await subtle.digest("SHA-256", ciphertext)), digest)) {
    throw new TamperedError("ciphertext does not match its digest");
  }
  const kek = await unwrapBatchKey(encPrivateKey, wrappedKek, keyId);
  const dek = await aesGcmOpen(kek, sealedDek, concat(DEK_INFO, commitment));
  const plain = await aesGcmOpen(dek, ciphertext, commitment);
  const cut = plain.indexOf(0x0a);
  if (cut < 0) throw new TamperedError("record plaintext is malformed");
  let header;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plain.subarray(0, cut)));
  } catch {
    throw new TamperedError("record header is malformed");
  }
  const canonical = plain.slice(cut + 1);
  let salt;
  try {
    salt = bytes(header.salt);
  } catch {
    throw new TamperedError("record header is malformed");
  }
  if (salt.length !== 32 || !sameBytes(await recomputeCommitment(canonical, salt), commitment)) {
    throw new TamperedError("decrypted record does not match its commitment");
  }
  return { header, canonical };
}
